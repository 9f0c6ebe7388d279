# The Vault policy of the wrapd agent (written by vault-setup.sh as "wrapd").
# Exactly the Transit calls wrapd makes (vault/transit.c), on its one key:
#   datakey/plaintext  a fresh volume key when a blank or erased device is formatted
#   decrypt            unwrap a volume key when a volume is opened (batched at start)
#   rewrap             `wrapctl rewrap --all` in the pod after the key is rotated
#   keys (read)        `wrapctl vault status` / `wrapctl doctor`: the key is derived
# Token lookup-self, renew-self and revoke-self come with Vault's default policy.
# No encrypt, no key creation, rotation, deletion or configuration.
path "transit/datakey/plaintext/wrapd" { capabilities = ["update"] }
path "transit/decrypt/wrapd"           { capabilities = ["update"] }
path "transit/rewrap/wrapd"            { capabilities = ["update"] }
path "transit/keys/wrapd"              { capabilities = ["read"] }
