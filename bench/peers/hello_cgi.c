/* The C hello CGI program bench/run.sh measures gatewayd's CGI mode against. */
#include <stdio.h>

int main(void) {
    fputs("Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\nHello, World!\n", stdout);
    return 0;
}
