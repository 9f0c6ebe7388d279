# systemd: the unit goes where systemd looks for units (configure's
# --with-systemdsystemunitdir, from pkg-config by default).
if INSTALL_SYSTEMD_UNIT
systemdsystemunit_DATA = systemd/wrapd.service
endif

# distcheck installs as a user into a staging prefix: the unit and completion
# directories (absolute, from pkg-config) must follow it there.
AM_DISTCHECK_CONFIGURE_FLAGS = \
	--with-systemdsystemunitdir=$$dc_install_base/$(systemdsystemunitdir) \
	--with-bashcompletiondir=$$dc_install_base/$(bashcompletiondir)
