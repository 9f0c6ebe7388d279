/* Include this instead of <cmocka.h>: cmocka needs these headers first. */
#ifndef WRAPD_UNIT_H
#define WRAPD_UNIT_H
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#endif
