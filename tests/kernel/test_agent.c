/* Launcher for the agent's kernel suite (tests/agent/vm_agent.sh), so
 * tests/vm/run-kernel-tests finds it among the built tests/kernel/test_*. */
#include <stdio.h>
#include <unistd.h>

int main(void)
{
	const char *sh = WRAPD_ABS_SRCDIR "/tests/agent/vm_agent.sh";
	execl("/bin/bash", "bash", sh, WRAPD_ABS_SRCDIR, WRAPD_ABS_BUILDDIR, (char *)NULL);
	perror(sh);
	return 1;
}
