/*
 * Loop devices for the cmocka host tests, through losetup(8) as an operator
 * would make them (the code under test must find them on its own). Include
 * after tests/lib/unit.h.
 */
#ifndef WRAPD_TEST_LOOP_H
#define WRAPD_TEST_LOOP_H
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static inline bool test_have_loop(void)
{
	return geteuid() == 0 && access("/dev/loop-control", R_OK | W_OK) == 0;
}

/* `losetup -f --show ARGS` into dev; "" when it failed. */
static inline void test_losetup(const char *args, char *dev, size_t n)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "losetup -f --show %s 2>/dev/null", args);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	if (!fgets(dev, (int)n, p))
		dev[0] = '\0';
	if (pclose(p) != 0)
		dev[0] = '\0';
	dev[strcspn(dev, "\n")] = '\0';
}

static inline void test_losetup_d(const char *dev)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "losetup -d %s", dev);
	assert_int_equal(system(cmd), 0);
}
#endif
