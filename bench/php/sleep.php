<?php
// Holds a worker for ?ms= milliseconds (default 50), for the pool growth benchmark.
usleep((int) ($_GET["ms"] ?? 50) * 1000);
echo "slept\n";
