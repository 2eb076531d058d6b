#ifndef GREET_H
#define GREET_H

/* Returns a static greeting that names the library and its version. */
const char *greet(void);

#endif
