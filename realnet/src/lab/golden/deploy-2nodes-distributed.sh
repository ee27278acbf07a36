##### fe.up.sh (front end)
#!/bin/sh
# dl7 lab PC `fe` (front end), 198.18.0.1: setup.
# Lab `dl7`: subnet 198.18.0.0/24, VIP 198.18.0.250:8080, distributed architecture.
# Run as root on that machine; DEV names its lab NIC (default eth0).
set -eu
DEV="${DEV:-eth0}"
ip addr replace 198.18.0.1/24 dev $DEV
ip link set $DEV up
# The front end owns the VIP: it alone answers ARP for it.
ip addr replace 198.18.0.250/32 dev $DEV
if { [ -e /proc/net/ip_vs ] || modprobe -q ip_vs 2>/dev/null; } && [ -e /proc/net/ip_vs ] && command -v ipvsadm >/dev/null; then
  echo "fe: IPVS direct routing"
  # IPVS direct routing, round robin: requests in, responses go from the nodes to the clients.
  ipvsadm -A -t 198.18.0.250:8080 -s rr
  ipvsadm -a -t 198.18.0.250:8080 -r 198.18.0.11:8080 -g
  ipvsadm -a -t 198.18.0.250:8080 -r 198.18.0.12:8080 -g
  ipvsadm -L -n
else
  echo "fe: no IPVS here: nftables fwd direct routing"
  # No IPVS: the nftables fwd rule (source hash), rewriting only the Ethernet destination.
  nft -f - <<EOF
table netdev dl7_dr {
  chain in {
    type filter hook ingress device $DEV priority 0;
    ip daddr 198.18.0.250 tcp dport 8080 fwd ip to jhash ip saddr . tcp sport mod 2 seed 0x5eed map { 0 : 198.18.0.11, 1 : 198.18.0.12 } device $DEV
  }
}
EOF
fi
# No dl7 process here: the kernel forwards.
##### fe.down.sh (front end)
#!/bin/sh
# dl7 lab PC `fe` (front end), 198.18.0.1: teardown.
# Lab `dl7`: subnet 198.18.0.0/24, VIP 198.18.0.250:8080, distributed architecture.
# Run as root on that machine; DEV names its lab NIC (default eth0).
set -u
DEV="${DEV:-eth0}"
ipvsadm -D -t 198.18.0.250:8080 2>/dev/null || true
nft delete table netdev dl7_dr 2>/dev/null || true
ip addr del 198.18.0.250/32 dev $DEV 2>/dev/null || true
ip addr del 198.18.0.1/24 dev $DEV 2>/dev/null || true
##### origin.up.sh (origin web server)
#!/bin/sh
# dl7 lab PC `origin` (origin web server), 198.18.0.2: setup.
# Lab `dl7`: subnet 198.18.0.0/24, VIP 198.18.0.250:8080, distributed architecture.
# Run as root on that machine; DEV names its lab NIC (default eth0).
set -eu
DEV="${DEV:-eth0}"
ip addr replace 198.18.0.2/24 dev $DEV
ip link set $DEV up
# The service, in the foreground: stop it with Ctrl-C, then run origin.down.sh.
exec dl7 origin --workload surge100 --listen 198.18.0.2:8080
##### origin.down.sh (origin web server)
#!/bin/sh
# dl7 lab PC `origin` (origin web server), 198.18.0.2: teardown.
# Lab `dl7`: subnet 198.18.0.0/24, VIP 198.18.0.250:8080, distributed architecture.
# Run as root on that machine; DEV names its lab NIC (default eth0).
set -u
DEV="${DEV:-eth0}"
ip addr del 198.18.0.2/24 dev $DEV 2>/dev/null || true
##### n1.up.sh (cache node 1 of 2)
#!/bin/sh
# dl7 lab PC `n1` (cache node 1 of 2), 198.18.0.11: setup.
# Lab `dl7`: subnet 198.18.0.0/24, VIP 198.18.0.250:8080, distributed architecture.
# Run as root on that machine; DEV names its lab NIC (default eth0).
set -eu
DEV="${DEV:-eth0}"
ip addr replace 198.18.0.11/24 dev $DEV
ip link set $DEV up
# Direct routing: accept packets for the VIP, never answer ARP for it (sysctls before the VIP).
sysctl -q -w "net.ipv4.conf.all.arp_ignore=1" "net.ipv4.conf.all.arp_announce=2" "net.ipv4.conf.$DEV.arp_ignore=1" "net.ipv4.conf.$DEV.arp_announce=2"
ip addr replace 198.18.0.250/32 dev lo
# The service, in the foreground: stop it with Ctrl-C, then run n1.down.sh.
exec dl7 node --id 0 --nodes 198.18.0.11:8080,198.18.0.12:8080 --origin 198.18.0.2:8080 --policy md5 --listen 0.0.0.0:8080
##### n1.down.sh (cache node 1 of 2)
#!/bin/sh
# dl7 lab PC `n1` (cache node 1 of 2), 198.18.0.11: teardown.
# Lab `dl7`: subnet 198.18.0.0/24, VIP 198.18.0.250:8080, distributed architecture.
# Run as root on that machine; DEV names its lab NIC (default eth0).
set -u
DEV="${DEV:-eth0}"
ip addr del 198.18.0.250/32 dev lo 2>/dev/null || true
# Back to the Linux defaults.
sysctl -q -w "net.ipv4.conf.all.arp_ignore=0" "net.ipv4.conf.all.arp_announce=0" "net.ipv4.conf.$DEV.arp_ignore=0" "net.ipv4.conf.$DEV.arp_announce=0" 2>/dev/null || true
ip addr del 198.18.0.11/24 dev $DEV 2>/dev/null || true
##### n2.up.sh (cache node 2 of 2)
#!/bin/sh
# dl7 lab PC `n2` (cache node 2 of 2), 198.18.0.12: setup.
# Lab `dl7`: subnet 198.18.0.0/24, VIP 198.18.0.250:8080, distributed architecture.
# Run as root on that machine; DEV names its lab NIC (default eth0).
set -eu
DEV="${DEV:-eth0}"
ip addr replace 198.18.0.12/24 dev $DEV
ip link set $DEV up
# Direct routing: accept packets for the VIP, never answer ARP for it (sysctls before the VIP).
sysctl -q -w "net.ipv4.conf.all.arp_ignore=1" "net.ipv4.conf.all.arp_announce=2" "net.ipv4.conf.$DEV.arp_ignore=1" "net.ipv4.conf.$DEV.arp_announce=2"
ip addr replace 198.18.0.250/32 dev lo
# The service, in the foreground: stop it with Ctrl-C, then run n2.down.sh.
exec dl7 node --id 1 --nodes 198.18.0.11:8080,198.18.0.12:8080 --origin 198.18.0.2:8080 --policy md5 --listen 0.0.0.0:8080
##### n2.down.sh (cache node 2 of 2)
#!/bin/sh
# dl7 lab PC `n2` (cache node 2 of 2), 198.18.0.12: teardown.
# Lab `dl7`: subnet 198.18.0.0/24, VIP 198.18.0.250:8080, distributed architecture.
# Run as root on that machine; DEV names its lab NIC (default eth0).
set -u
DEV="${DEV:-eth0}"
ip addr del 198.18.0.250/32 dev lo 2>/dev/null || true
# Back to the Linux defaults.
sysctl -q -w "net.ipv4.conf.all.arp_ignore=0" "net.ipv4.conf.all.arp_announce=0" "net.ipv4.conf.$DEV.arp_ignore=0" "net.ipv4.conf.$DEV.arp_announce=0" 2>/dev/null || true
ip addr del 198.18.0.12/24 dev $DEV 2>/dev/null || true
##### c1.up.sh (client 1 of 2)
#!/bin/sh
# dl7 lab PC `c1` (client 1 of 2), 198.18.0.101: setup.
# Lab `dl7`: subnet 198.18.0.0/24, VIP 198.18.0.250:8080, distributed architecture.
# Run as root on that machine; DEV names its lab NIC (default eth0).
set -eu
DEV="${DEV:-eth0}"
ip addr replace 198.18.0.101/24 dev $DEV
ip link set $DEV up
# The service, in the foreground: stop it with Ctrl-C, then run c1.down.sh.
exec dl7 load --target 198.18.0.250:8080 --workload surge100 --seed 1 --connections 63 --duration-s 60
##### c1.down.sh (client 1 of 2)
#!/bin/sh
# dl7 lab PC `c1` (client 1 of 2), 198.18.0.101: teardown.
# Lab `dl7`: subnet 198.18.0.0/24, VIP 198.18.0.250:8080, distributed architecture.
# Run as root on that machine; DEV names its lab NIC (default eth0).
set -u
DEV="${DEV:-eth0}"
ip addr del 198.18.0.101/24 dev $DEV 2>/dev/null || true
##### c2.up.sh (client 2 of 2)
#!/bin/sh
# dl7 lab PC `c2` (client 2 of 2), 198.18.0.102: setup.
# Lab `dl7`: subnet 198.18.0.0/24, VIP 198.18.0.250:8080, distributed architecture.
# Run as root on that machine; DEV names its lab NIC (default eth0).
set -eu
DEV="${DEV:-eth0}"
ip addr replace 198.18.0.102/24 dev $DEV
ip link set $DEV up
# The service, in the foreground: stop it with Ctrl-C, then run c2.down.sh.
exec dl7 load --target 198.18.0.250:8080 --workload surge100 --seed 2 --connections 63 --duration-s 60
##### c2.down.sh (client 2 of 2)
#!/bin/sh
# dl7 lab PC `c2` (client 2 of 2), 198.18.0.102: teardown.
# Lab `dl7`: subnet 198.18.0.0/24, VIP 198.18.0.250:8080, distributed architecture.
# Run as root on that machine; DEV names its lab NIC (default eth0).
set -u
DEV="${DEV:-eth0}"
ip addr del 198.18.0.102/24 dev $DEV 2>/dev/null || true
