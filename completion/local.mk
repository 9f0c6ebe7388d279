# completion: bash completion for wrapctl, installed where bash-completion
# loads it on demand (configure's --with-bashcompletiondir).
if INSTALL_BASH_COMPLETION
dist_bashcompletion_DATA = completion/wrapctl
else
EXTRA_DIST += completion/wrapctl
endif

# Sources the file in bash and checks COMPREPLY for each kind of word.
TESTS += tests/pkg/host_completion.sh
EXTRA_DIST += tests/pkg/host_completion.sh
