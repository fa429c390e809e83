<?php
// A 100 KB HTML page (exactly 102,400 bytes) built the way a template does: a table from an array.
declare(strict_types=1);

$rows = [];
for ($i = 1; $i <= 1000; $i++) {
    $rows[] = ['id' => $i, 'name' => "Item $i", 'price' => $i * 7 % 1000];
}
$html = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>100 KB page</title></head><body>\n<table>\n";
foreach ($rows as $row) {
    $html .= sprintf("<tr><td>%d</td><td>%s</td><td>%d.00</td></tr>\n", $row['id'], htmlspecialchars($row['name']), $row['price']);
}
$tail = "</table>\n</body></html>\n";
// Pad with an HTML comment so every response has the same length, whatever the numbers above.
$pad = 102400 - strlen($html) - strlen($tail) - strlen("<!--  -->\n");
echo $html, '<!-- ', str_repeat('.', max(0, $pad)), " -->\n", $tail;
