#include <stdio.h>

int main(void) {
  puts("counter 3");
  return 0;
}
