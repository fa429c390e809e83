<?php
// Reads the request body from php://input in 64 KiB pieces and answers with its length.
$in = fopen('php://input', 'rb');
$bytes = 0;
while (!feof($in)) {
    $bytes += strlen((string) fread($in, 65536));
}
fclose($in);
echo "received $bytes bytes\n";
