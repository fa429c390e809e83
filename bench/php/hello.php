<?php
// The benchmark's PHP script: the smallest useful response, so the figures measure the FastCGI path.
echo "Hello, world!\n";
