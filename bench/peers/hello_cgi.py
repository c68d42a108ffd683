# The Python hello CGI program of bench/run.sh.
import sys

sys.stdout.write("Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\nHello, World!\n")
