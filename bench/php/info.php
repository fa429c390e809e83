<?php
// phpinfo(): a larger page (about 70-90 KB, depending on the SAPI and environment) that PHP builds itself.
phpinfo();
