# cli: the wrapctl command-line tool. One file per command family.
sbin_PROGRAMS += wrapctl
wrapctl_SOURCES = cli/wrapctl.c cli/cli.h
wrapctl_SOURCES += cli/cmd_volume.c cli/cmd_status_agent.c
wrapctl_SOURCES += cli/cmd_format.c cli/cmd_inspect.c cli/cmd_header.c
wrapctl_LDADD = $(WRAPD_LIBS)
wrapctl_SOURCES += cli/cli_vault.c cli/cmd_vault.c
wrapctl_SOURCES += cli/cmd_convert.c
