# man: the manual pages, written in scdoc (man/*.scd) and turned into troff at
# build time. The built pages are distributed, so a release tarball needs no
# scdoc; a git checkout does (configure says so).
WRAPD_MANPAGES = man/wrapctl.8 man/wrapd.8 man/wrapd.conf.5 man/wrapd-volumes.5
dist_man_MANS = $(WRAPD_MANPAGES)
EXTRA_DIST += $(WRAPD_MANPAGES:=.scd)
MAINTAINERCLEANFILES = $(WRAPD_MANPAGES)

# One recipe for every page; the source is the page's name plus .scd, with
# @VERSION@ replaced. scdoc dates the page from SOURCE_DATE_EPOCH when set.
wrapd_scdoc = $(AM_V_GEN)if test -z '$(SCDOC)'; then \
	echo "$@: scdoc is needed to rebuild this page: apt-get install scdoc" >&2; exit 1; fi; \
	$(MKDIR_P) man && sed 's/[@]VERSION[@]/$(PACKAGE_VERSION)/g' $(srcdir)/$@.scd | $(SCDOC) > $@.tmp && \
	mv -f $@.tmp $@
man/wrapctl.8: man/wrapctl.8.scd
	$(wrapd_scdoc)
man/wrapd.8: man/wrapd.8.scd
	$(wrapd_scdoc)
man/wrapd.conf.5: man/wrapd.conf.5.scd
	$(wrapd_scdoc)
man/wrapd-volumes.5: man/wrapd-volumes.5.scd
	$(wrapd_scdoc)

# Every page renders cleanly: mandoc -T lint and lexgrog find no errors.
TESTS += tests/pkg/host_man_lint.sh
EXTRA_DIST += tests/pkg/host_man_lint.sh

# Example configuration and volume table: documentation, never /etc. The
# test checks them and wrapd.conf(5) against the keys the code declares.
TESTS += tests/pkg/host_examples.sh
EXTRA_DIST += tests/pkg/host_examples.sh
exampledir = $(docdir)/examples
dist_example_DATA = examples/wrapd.conf examples/volumes
dist_doc_DATA = README.md
