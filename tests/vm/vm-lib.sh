# shellcheck shell=bash
# Shared helpers for vm-run: host tools, the cached Debian kernel, and the
# cached initramfs. Sourced, not executed.

VM_CACHE=${WRAPD_VM_CACHE:-/var/cache/wrapd-vm}
VM_HERE=${VM_HERE:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}

# Modules the guest loads at boot (their modules.dep dependencies come along).
# Filesystems and dm targets are loaded eagerly so tests never wait on autoload.
VM_MODULES=(
    virtio_pci virtio_rng virtio_blk 9pnet_virtio 9p overlay
    loop brd
    dm-mod dm-crypt dm-flakey dm-delay dm-zero
    xts aesni-intel af_alg algif_skcipher algif_hash
    ext4 xfs btrfs
)

vm_log() { echo "vm-run: $*" >&2; }

# Packages a fresh Debian 12 machine needs; installed on demand.
vm_need_host_tools() {
    local missing=() t p
    for t in qemu-system-x86_64:qemu-system-x86 /bin/busybox:busybox-static \
             cpio:cpio depmod:kmod modprobe:kmod; do
        p=${t#*:}; t=${t%%:*}
        if [[ $t == /* ]]; then
            # busybox must be the static build: it runs inside the initramfs,
            # where there is no libc. ldd fails on a static executable.
            if [ ! -x "$t" ] || ldd "$t" >/dev/null 2>&1; then
                missing+=("$p")
            fi
        else
            command -v "$t" >/dev/null 2>&1 || missing+=("$p")
        fi
    done
    if [ ${#missing[@]} -gt 0 ]; then
        vm_log "installing ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
            "${missing[@]}" >&2 || { vm_log "apt-get install failed"; exit 125; }
    fi
}

vm_lock() {
    mkdir -p "$VM_CACHE"
    exec {VM_LOCK_FD}>"$VM_CACHE/.lock"
    flock -x "$VM_LOCK_FD"
}
vm_unlock() { flock -u "$VM_LOCK_FD"; exec {VM_LOCK_FD}>&-; }

# vm_take_slot: waits for one of WRAPD_VM_SLOTS (default 2) machine-wide VM
# slots and holds it until this process and its children (qemu) end. A TCG
# guest wants about two cores and this machine has two: five VMs at once
# (several engineers' suites) took three times as long each as two at a time
# and made every figure meaningless. CI runs one VM at a time and never waits.
vm_take_slot() {
    local slots=${WRAPD_VM_SLOTS:-2} i said=0
    mkdir -p "$VM_CACHE"
    while :; do
        for ((i = 1; i <= slots; i++)); do
            exec {VM_SLOT_FD}>"$VM_CACHE/slot.$i"
            flock -n "$VM_SLOT_FD" && return 0
            exec {VM_SLOT_FD}>&-
        done
        if [ $said = 0 ]; then
            echo "vm-run: $slots VM(s) already running on this machine; waiting for one to end (WRAPD_VM_SLOTS=$slots)" >&2
            said=1
        fi
        sleep 2
    done
}

# The newest linux-image-6.1.*-amd64 Debian offers (through the metapackage),
# unpacked once into the cache. Offline, the newest cached one is reused.
vm_pick_kernel_pkg() {
    local pkg
    if [ -n "${WRAPD_VM_KERNEL_PKG:-}" ]; then echo "$WRAPD_VM_KERNEL_PKG"; return; fi
    pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
          awk '/Depends: linux-image-6\.1\.[0-9.-]*-amd64$/ && !p {print $2; p = 1}')
    if [ -z "$pkg" ] && [ -z "$(ls "$VM_CACHE/kernels" 2>/dev/null)" ]; then
        apt-get update >&2 || true
        pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
              awk '/Depends: linux-image-6\.1\.[0-9.-]*-amd64$/ && !p {print $2; p = 1}')
    fi
    if [ -z "$pkg" ]; then
        pkg=$(ls "$VM_CACHE/kernels" 2>/dev/null | sort -V | tail -n 1)
    fi
    echo "$pkg"
}

vm_prepare_kernel() {
    vm_lock
    local pkg dir tmp
    pkg=$(vm_pick_kernel_pkg)
    [ -n "$pkg" ] || { vm_log "no linux-image-6.1.*-amd64 package found"; exit 125; }
    dir=$VM_CACHE/kernels/$pkg
    if [ ! -f "$dir/.complete" ]; then
        vm_log "fetching $pkg into $dir"
        rm -rf "$dir"
        tmp=$(mktemp -d "$VM_CACHE/dl.XXXXXX")
        chmod 0755 "$tmp"
        if ! (cd "$tmp" && apt-get download "$pkg" >download.log 2>&1); then
            cat "$tmp/download.log" >&2
            rm -rf "$tmp"
            vm_log "apt-get download $pkg failed"
            exit 125
        fi
        mkdir -p "$tmp/root"
        dpkg -x "$tmp"/"$pkg"_*.deb "$tmp/root"
        mkdir -p "$VM_CACHE/kernels"
        mv "$tmp/root" "$dir"
        rm -rf "$tmp"
        VM_KVER=${pkg#linux-image-}
        depmod -b "$dir" "$VM_KVER"
        touch "$dir/.complete"
    fi
    VM_KVER=${pkg#linux-image-}
    VM_KROOT=$dir
    VM_VMLINUZ=$dir/boot/vmlinuz-$VM_KVER
    [ -f "$VM_VMLINUZ" ] || { vm_log "missing $VM_VMLINUZ"; exit 125; }
    vm_unlock
}

# The initramfs is named by a hash of everything that goes into it, so a
# changed harness or kernel builds a new one and concurrent runs never clash.
vm_prepare_initramfs() {
    local key stage m mods f
    key=$( { echo "$VM_KVER"; cat "$VM_HERE/guest-init" "$VM_HERE/vm-lib.sh";
             echo "${VM_MODULES[*]}"; busybox 2>&1 | sed -n 1p; } | sha256sum | cut -c1-16)
    VM_INITRD=$VM_CACHE/initramfs-$VM_KVER-$key.cpio.gz
    [ -f "$VM_INITRD" ] && return 0
    vm_lock
    if [ ! -f "$VM_INITRD" ]; then
        vm_log "building $VM_INITRD"
        stage=$(mktemp -d "$VM_CACHE/stage.XXXXXX")
        mkdir -p "$stage"/{bin,sbin,etc,proc,sys,dev,run,tmp,lib/modules/"$VM_KVER"}
        cp /bin/busybox "$stage/bin/busybox"
        for f in $(busybox --list); do
            [ "$f" = busybox ] || ln -s busybox "$stage/bin/$f"
        done
        ln -s ../bin/busybox "$stage/sbin/modprobe"
        install -m 0755 "$VM_HERE/guest-init" "$stage/init"
        mods=$(for m in "${VM_MODULES[@]}"; do
                   modprobe -d "$VM_KROOT" -S "$VM_KVER" --show-depends "$m" ||
                       { vm_log "module $m not found in $VM_KVER"; exit 1; }
               done | awk '$1 == "insmod" {print $2}' | sort -u) || exit 125
        for f in $mods; do
            mkdir -p "$stage/$(dirname "${f#"$VM_KROOT"}")"
            cp "$f" "$stage/${f#"$VM_KROOT"}"
        done
        cp "$VM_KROOT/lib/modules/$VM_KVER"/modules.{builtin,builtin.modinfo,order} \
           "$stage/lib/modules/$VM_KVER/"
        depmod -b "$stage" "$VM_KVER"
        printf '%s\n' "${VM_MODULES[@]}" >"$stage/etc/wrapd-vm-modules"
        (cd "$stage" && find . -print0 | cpio --null -o -H newc --quiet | gzip -1) \
            >"$VM_INITRD.tmp"
        mv "$VM_INITRD.tmp" "$VM_INITRD"
        rm -rf "$stage"
        # Drop initramfs images of older harness versions.
        find "$VM_CACHE" -maxdepth 1 -name 'initramfs-*.cpio.gz' ! -newer "$VM_INITRD" \
            ! -path "$VM_INITRD" -mmin +60 -delete 2>/dev/null || true
    fi
    vm_unlock
}
