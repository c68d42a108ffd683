<?php
// The php-fpm peer of bench/run.sh.
header('Content-Type: text/plain');
echo "Hello, World!\n";
