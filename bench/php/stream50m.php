<?php
// A 50 MiB (52,428,800-byte) response written in 64 KiB pieces without a Content-Length: the gateway
// has to stream it (or buffer it), which is what the memory figures show.
header('Content-Type: application/octet-stream');
$chunk = str_repeat('0123456789abcdef', 4096);
for ($i = 0; $i < 800; $i++) {
    echo $chunk;
}
