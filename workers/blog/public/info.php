<?php
// PHP's own report of its configuration, as the pool's workers run it.
phpinfo();
