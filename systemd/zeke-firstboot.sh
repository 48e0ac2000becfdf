#!/bin/sh
# zeke first boot: make this device's own secrets and identity, fill the card, run setup.
# Installed as /usr/lib/zeke/zeke-firstboot; run once by zeke-firstboot.service.
set -eu

ZEKE_SETUP_ARGS="--yes"
ZEKE_BOOT_PARTITION="/boot/firmware"
[ -r /etc/default/zeke-firstboot ] && . /etc/default/zeke-firstboot
ZEKE=/opt/zeke/bin/zeke
DONE=/var/lib/zeke/firstboot.done

log() { echo "zeke-firstboot: $*"; }

machine_id() {
    # The image ships "uninitialized": systemd made a fresh id at boot; make sure it is on disk.
    if ! grep -Eq '^[0-9a-f]{32}$' /etc/machine-id 2>/dev/null; then
        systemd-machine-id-setup
    fi
    if findmnt -n /etc/machine-id >/dev/null 2>&1; then
        systemd-machine-id-setup --commit
    fi
    log "machine id set"
}

host_keys() {
    command -v ssh-keygen >/dev/null 2>&1 || return 0
    ssh-keygen -A
    log "ssh host keys generated ($(ls /etc/ssh/ssh_host_*_key | wc -l) keys)"
}

grow_root() {
    dev=$(findmnt -no SOURCE /)
    part=$(basename "$(readlink -f "$dev")")
    sys=/sys/class/block/$part
    [ -r "$sys/partition" ] || { log "root $dev is not a partition: not grown"; return 0; }
    disk=/dev/$(basename "$(readlink -f "$sys/..")")
    num=$(cat "$sys/partition")
    end=$(( $(cat "$sys/start") + $(cat "$sys/size") ))
    total=$(cat "/sys/class/block/$(basename "$disk")/size")
    # Leave the last MiB for the backup GPT; grow only when at least 16 MiB are free.
    if [ $(( total - end )) -lt 34816 ]; then
        log "root partition already fills $disk"
        return 0
    fi
    # The image's backup GPT sits where the image ended: move it to the end of the card,
    # then let the root partition take everything after it.
    if sfdisk -d "$disk" 2>/dev/null | grep -q '^label: gpt'; then
        sfdisk --quiet --relocate gpt-bak-std "$disk" 2>/dev/null
    fi
    if ! out=$(echo ", +" | sfdisk --quiet --no-reread --no-tell-kernel -N "$num" "$disk" 2>&1); then
        echo "$out"
        log "could not grow partition $num of $disk"
        return 1
    fi
    partx -u -n "$num" "$disk"
    if ! out=$(resize2fs "$dev" 2>&1); then
        echo "$out"
        log "could not grow the root filesystem on $dev"
        return 1
    fi
    log "root partition grown to $(( $(cat "$sys/size") / 2048 )) MiB, filesystem $(df -h --output=size / | tail -n 1 | tr -d ' ')"
}

ssh_access() {
    keys="$ZEKE_BOOT_PARTITION/zeke/authorized_keys"
    if [ -n "$ZEKE_BOOT_PARTITION" ] && [ -s "$keys" ]; then
        install -d -m 0700 /root/.ssh
        install -m 0600 "$keys" /root/.ssh/authorized_keys
        systemctl enable ssh.service
        systemctl start --no-block ssh.service
        log "ssh enabled for $(grep -c . "$keys") key(s) from the boot partition"
    else
        log "ssh stays off (no zeke/authorized_keys on the boot partition)"
    fi
}

zeke_setup() {
    # shellcheck disable=SC2086  # the arguments are words from the board profile
    if ! "$ZEKE" setup --help >/dev/null 2>&1; then
        log "this zeke build has no 'setup' command: skipped"
        return 0
    fi
    log "zeke setup $ZEKE_SETUP_ARGS"
    "$ZEKE" setup $ZEKE_SETUP_ARGS
}

machine_id
host_keys
grow_root
ssh_access
zeke_setup
mkdir -p "$(dirname "$DONE")"
date -u +%Y-%m-%dT%H:%M:%SZ > "$DONE"
log "done"
