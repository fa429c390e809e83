<?php
// A tiny front-controller app: every path that is not a file reaches this script (pretty URLs, as with
// nginx's try_files $uri $uri/ /index.php?$args), which routes REQUEST_URI to a handler.
declare(strict_types=1);

$routes = [
    '#^/$#' => fn (array $m): array => [200, 'Home', '<p>Welcome.</p>'],
    '#^/posts$#' => fn (array $m): array => [200, 'Posts', '<ul><li><a href="/posts/1">First</a></li></ul>'],
    '#^/posts/(\d+)$#' => fn (array $m): array => [200, "Post {$m[1]}", "<article><h1>post {$m[1]}</h1><p>Lorem ipsum dolor sit amet.</p></article>"],
    '#^/about$#' => fn (array $m): array => [200, 'About', '<p>About us.</p>'],
];

$path = parse_url($_SERVER['REQUEST_URI'] ?? '/', PHP_URL_PATH) ?: '/';
[$status, $title, $body] = [404, 'Not found', '<p>No such page.</p>'];
foreach ($routes as $pattern => $handler) {
    if (preg_match($pattern, $path, $m)) {
        [$status, $title, $body] = $handler($m);
        break;
    }
}
http_response_code($status);
$sort = htmlspecialchars((string) ($_GET['sort'] ?? 'none'));
echo "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>$title</title></head>\n";
echo "<body><nav><a href=\"/\">Home</a> <a href=\"/posts\">Posts</a> <a href=\"/about\">About</a></nav>\n";
echo "$body\n<footer>sorted by $sort</footer></body></html>\n";
