<?php
// The smallest page: proves PHP runs behind TQServer.
header('Content-Type: text/plain; charset=utf-8');
echo "Hello from TQServer!\n";
