<?php
// What the php-manager example serves: which php-cgi process answered.
echo 'Hello from php-cgi pid ', getmypid(), "\n";
