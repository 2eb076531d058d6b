#include <stdio.h>

#include <greet.h>

int main(void) {
  puts(greet());
  puts("hello program");
  return 0;
}
