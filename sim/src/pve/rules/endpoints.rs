//! The parameter rules of every Proxmox VE endpoint the simulator serves, as
//! the project's own compact table (see `schema.rs` for the line syntax).
//! Lines tagged `@8` hold only on PVE 8.4, `@9` only on PVE 9.1.

pub const ENDPOINTS: &str = r##"
GET /version

GET /cluster/status

GET /cluster/resources
  type?                        str enum=vm|storage|node|sdn

GET /cluster/tasks

GET /cluster/options

GET /nodes

GET /nodes/{node}/subscription
  node                         str fmt=pve-node

GET /nodes/{node}/ceph/status
  node                         str fmt=pve-node

GET /nodes/{node}/status
  node                         str fmt=pve-node

GET /nodes/{node}/network
  node                         str fmt=pve-node
  type?                        str enum=bridge|bond|eth|alias|vlan|OVSBridge|OVSBond|OVSPort|OVSIntPort|vnet|any_bridge|any_local_bridge @8
  type?                        str enum=bridge|bond|eth|alias|vlan|fabric|OVSBridge|OVSBond|OVSPort|OVSIntPort|vnet|any_bridge|any_local_bridge|include_sdn @9

GET /nodes/{node}/dns
  node                         str fmt=pve-node

GET /nodes/{node}/network/{iface}
  iface                        str len=2..20 fmt=pve-iface
  node                         str fmt=pve-node

GET /cluster/nextid
  vmid?                        int 100..999999999 fmt=pve-vmid

GET /cluster/sdn

PUT /cluster/sdn
  lock-token?                  str @9
  release-lock?                bool @9

POST /cluster/sdn/lock @9
  allow-pending?               bool

DELETE /cluster/sdn/lock @9
  force?                       bool
  lock-token?                  str

POST /cluster/sdn/rollback @9
  lock-token?                  str
  release-lock?                bool

GET /cluster/sdn/controllers
  pending?                     bool
  running?                     bool
  type?                        str enum=bgp|evpn|faucet|isis

POST /cluster/sdn/controllers
  asn?                         int 0..4294967296 @8
  asn?                         int 0..4294967295 @9
  bgp-multipath-as-path-relax? bool
  controller                   str fmt=pve-sdn-controller-id
  ebgp?                        bool
  ebgp-multihop?               int
  fabric?                      str fmt=pve-sdn-fabric-id @9
  isis-domain?                 str
  isis-ifaces?                 str fmt=pve-iface-list
  isis-net?                    str fmt=pve-sdn-isis-net
  lock-token?                  str @9
  loopback?                    str
  node?                        str fmt=pve-node
  peers?                       str fmt=ip-list
  type                         str fmt=pve-configid enum=bgp|evpn|faucet|isis

GET /cluster/sdn/controllers/{controller}
  controller                   str fmt=pve-sdn-controller-id
  pending?                     bool
  running?                     bool

PUT /cluster/sdn/controllers/{controller}
  asn?                         int 0..4294967296 @8
  asn?                         int 0..4294967295 @9
  bgp-multipath-as-path-relax? bool
  controller                   str fmt=pve-sdn-controller-id
  delete?                      str len=..4096 fmt=pve-configid-list
  digest?                      str len=..64
  ebgp?                        bool
  ebgp-multihop?               int
  fabric?                      str fmt=pve-sdn-fabric-id @9
  isis-domain?                 str
  isis-ifaces?                 str fmt=pve-iface-list
  isis-net?                    str fmt=pve-sdn-isis-net
  lock-token?                  str @9
  loopback?                    str
  node?                        str fmt=pve-node
  peers?                       str fmt=ip-list

DELETE /cluster/sdn/controllers/{controller}
  controller                   str fmt=pve-sdn-controller-id
  lock-token?                  str @9

GET /cluster/sdn/zones
  pending?                     bool
  running?                     bool
  type?                        str enum=evpn|faucet|qinq|simple|vlan|vxlan

POST /cluster/sdn/zones
  advertise-subnets?           bool
  bridge?                      str
  bridge-disable-mac-learning? bool
  controller?                  str
  dhcp?                        str enum=dnsmasq
  disable-arp-nd-suppression?  bool
  dns?                         str
  dnszone?                     str fmt=dns-name
  dp-id?                       int
  exitnodes?                   str fmt=pve-node-list
  exitnodes-local-routing?     bool
  exitnodes-primary?           str fmt=pve-node
  fabric?                      str fmt=pve-sdn-fabric-id @9
  ipam?                        str
  lock-token?                  str @9
  mac?                         str fmt=mac-addr
  mtu?                         int
  nodes?                       str fmt=pve-node-list
  peers?                       str fmt=ip-list
  reversedns?                  str
  rt-import?                   str fmt=pve-sdn-bgp-rt-list
  tag?                         int 0..
  type                         str fmt=pve-configid enum=evpn|faucet|qinq|simple|vlan|vxlan
  vlan-protocol?               str enum=802.1q|802.1ad
  vrf-vxlan?                   int @8
  vrf-vxlan?                   int 1..16777215 @9
  vxlan-port?                  int 1..65536
  zone                         str fmt=pve-sdn-zone-id

GET /cluster/sdn/zones/{zone}
  pending?                     bool
  running?                     bool
  zone                         str fmt=pve-sdn-zone-id

PUT /cluster/sdn/zones/{zone}
  advertise-subnets?           bool
  bridge?                      str
  bridge-disable-mac-learning? bool
  controller?                  str
  delete?                      str len=..4096 fmt=pve-configid-list
  dhcp?                        str enum=dnsmasq
  digest?                      str len=..64
  disable-arp-nd-suppression?  bool
  dns?                         str
  dnszone?                     str fmt=dns-name
  dp-id?                       int
  exitnodes?                   str fmt=pve-node-list
  exitnodes-local-routing?     bool
  exitnodes-primary?           str fmt=pve-node
  fabric?                      str fmt=pve-sdn-fabric-id @9
  ipam?                        str
  lock-token?                  str @9
  mac?                         str fmt=mac-addr
  mtu?                         int
  nodes?                       str fmt=pve-node-list
  peers?                       str fmt=ip-list
  reversedns?                  str
  rt-import?                   str fmt=pve-sdn-bgp-rt-list
  tag?                         int 0..
  vlan-protocol?               str enum=802.1q|802.1ad
  vrf-vxlan?                   int @8
  vrf-vxlan?                   int 1..16777215 @9
  vxlan-port?                  int 1..65536
  zone                         str fmt=pve-sdn-zone-id

DELETE /cluster/sdn/zones/{zone}
  lock-token?                  str @9
  zone                         str fmt=pve-sdn-zone-id

GET /cluster/sdn/vnets
  pending?                     bool
  running?                     bool

POST /cluster/sdn/vnets
  alias?                       str len=..256 pat=(?^i:[\(\)-_.\w\d\s]{0,256})
  isolate-ports?               bool
  lock-token?                  str @9
  tag?                         int @8
  tag?                         int 1..16777215 @9
  type?                        str enum=vnet
  vlanaware?                   bool
  vnet                         str fmt=pve-sdn-vnet-id
  zone                         str

GET /cluster/sdn/vnets/{vnet}
  pending?                     bool
  running?                     bool
  vnet                         str fmt=pve-sdn-vnet-id

PUT /cluster/sdn/vnets/{vnet}
  alias?                       str len=..256 pat=(?^i:[\(\)-_.\w\d\s]{0,256})
  delete?                      str len=..4096 fmt=pve-configid-list
  digest?                      str len=..64
  isolate-ports?               bool
  lock-token?                  str @9
  tag?                         int @8
  tag?                         int 1..16777215 @9
  vlanaware?                   bool
  vnet                         str fmt=pve-sdn-vnet-id
  zone?                        str

DELETE /cluster/sdn/vnets/{vnet}
  lock-token?                  str @9
  vnet                         str fmt=pve-sdn-vnet-id

GET /cluster/sdn/vnets/{vnet}/subnets
  pending?                     bool
  running?                     bool
  vnet                         str fmt=pve-sdn-vnet-id

POST /cluster/sdn/vnets/{vnet}/subnets
  dhcp-dns-server?             str fmt=ip
  dhcp-range?                  array fmt=pve-sdn-dhcp-range
  dnszoneprefix?               str fmt=dns-name
  gateway?                     str fmt=ip
  lock-token?                  str @9
  snat?                        bool
  subnet                       str fmt=pve-sdn-subnet-id
  type                         str enum=subnet
  vnet                         str

GET /cluster/sdn/vnets/{vnet}/subnets/{subnet}
  pending?                     bool
  running?                     bool
  subnet                       str fmt=pve-sdn-subnet-id
  vnet                         str fmt=pve-sdn-vnet-id

PUT /cluster/sdn/vnets/{vnet}/subnets/{subnet}
  delete?                      str len=..4096 fmt=pve-configid-list
  dhcp-dns-server?             str fmt=ip
  dhcp-range?                  array fmt=pve-sdn-dhcp-range
  digest?                      str len=..64
  dnszoneprefix?               str fmt=dns-name
  gateway?                     str fmt=ip
  lock-token?                  str @9
  snat?                        bool
  subnet                       str fmt=pve-sdn-subnet-id
  vnet?                        str

DELETE /cluster/sdn/vnets/{vnet}/subnets/{subnet}
  lock-token?                  str @9
  subnet                       str fmt=pve-sdn-subnet-id
  vnet                         str fmt=pve-sdn-vnet-id

GET /nodes/{node}/lxc
  node                         str fmt=pve-node

POST /nodes/{node}/lxc
  arch?                        str enum=amd64|i386|arm64|armhf|riscv32|riscv64
  bwlimit?                     num 0..
  cmode?                       str enum=shell|console|tty
  console?                     bool
  cores?                       int 1..8192
  cpulimit?                    num 0..8192
  cpuunits?                    int 0..500000
  debug?                       bool
  description?                 str len=..8192
  dev[n]?                      str prop=lxc-dev
  entrypoint?                  str @9 pat=(?^:[^\x00-\x08\x10-\x1F\x7F]+)
  env?                         str @9 pat=(?^:(?:\w+=[^\x00-\x08\x10-\x1F\x7F]*)(?:\0\w+=[^\x00-\x08\x10-\x1F\x7F]*)*)
  features?                    str prop=lxc-features
  force?                       bool
  ha-managed?                  bool @9
  hookscript?                  str fmt=pve-volume-id
  hostname?                    str len=..255 fmt=dns-name
  ignore-unpack-errors?        bool
  lock?                        str enum=backup|create|destroyed|disk|fstrim|migrate|mounted|rollback|snapshot|snapshot-delete
  memory?                      int 16..
  mp[n]?                       str prop=lxc-mp
  nameserver?                  str fmt=lxc-ip-with-ll-iface-list
  net[n]?                      str prop=lxc-net
  node                         str fmt=pve-node
  onboot?                      bool
  ostemplate                   str len=..255
  ostype?                      str enum=debian|devuan|ubuntu|centos|fedora|opensuse|archlinux|alpine|gentoo|nixos|unmanaged
  password?                    str len=5..
  pool?                        str fmt=pve-poolid
  protection?                  bool
  restore?                     bool
  rootfs?                      str prop=lxc-rootfs
  searchdomain?                str fmt=dns-name-list
  ssh-public-keys?             str
  start?                       bool
  startup?                     str fmt=pve-startup-order
  storage?                     str fmt=pve-storage-id
  swap?                        int 0..
  tags?                        str fmt=pve-tag-list
  template?                    bool
  timezone?                    str fmt=pve-ct-timezone
  tty?                         int 0..6
  unique?                      bool requires=restore
  unprivileged?                bool
  unused[n]?                   str prop=lxc-unused
  vmid                         int 100..999999999 fmt=pve-vmid

DELETE /nodes/{node}/lxc/{vmid}
  destroy-unreferenced-disks?  bool
  force?                       bool
  node                         str fmt=pve-node
  purge?                       bool
  vmid                         int 100..999999999 fmt=pve-vmid

GET /nodes/{node}/lxc/{vmid}/config
  current?                     bool
  node                         str fmt=pve-node
  snapshot?                    str len=..40 fmt=pve-configid
  vmid                         int 100..999999999 fmt=pve-vmid

PUT /nodes/{node}/lxc/{vmid}/config
  arch?                        str enum=amd64|i386|arm64|armhf|riscv32|riscv64
  cmode?                       str enum=shell|console|tty
  console?                     bool
  cores?                       int 1..8192
  cpulimit?                    num 0..8192
  cpuunits?                    int 0..500000
  debug?                       bool
  delete?                      str fmt=pve-configid-list
  description?                 str len=..8192
  dev[n]?                      str prop=lxc-dev
  digest?                      str len=..40
  entrypoint?                  str @9 pat=(?^:[^\x00-\x08\x10-\x1F\x7F]+)
  env?                         str @9 pat=(?^:(?:\w+=[^\x00-\x08\x10-\x1F\x7F]*)(?:\0\w+=[^\x00-\x08\x10-\x1F\x7F]*)*)
  features?                    str prop=lxc-features
  hookscript?                  str fmt=pve-volume-id
  hostname?                    str len=..255 fmt=dns-name
  lock?                        str enum=backup|create|destroyed|disk|fstrim|migrate|mounted|rollback|snapshot|snapshot-delete
  memory?                      int 16..
  mp[n]?                       str prop=lxc-mp
  nameserver?                  str fmt=lxc-ip-with-ll-iface-list
  net[n]?                      str prop=lxc-net
  node                         str fmt=pve-node
  onboot?                      bool
  ostype?                      str enum=debian|devuan|ubuntu|centos|fedora|opensuse|archlinux|alpine|gentoo|nixos|unmanaged
  protection?                  bool
  revert?                      str fmt=pve-configid-list
  rootfs?                      str prop=lxc-rootfs
  searchdomain?                str fmt=dns-name-list
  startup?                     str fmt=pve-startup-order
  swap?                        int 0..
  tags?                        str fmt=pve-tag-list
  template?                    bool
  timezone?                    str fmt=pve-ct-timezone
  tty?                         int 0..6
  unprivileged?                bool
  unused[n]?                   str prop=lxc-unused
  vmid                         int 100..999999999 fmt=pve-vmid

PUT /nodes/{node}/lxc/{vmid}/resize
  digest?                      str len=..40
  disk                         str enum=rootfs|mp0|mp1|mp2|mp3|mp4|mp5|mp6|mp7|mp8|mp9|mp10|mp11|mp12|mp13|mp14|mp15|mp16|mp17|mp18|mp19|mp20|mp21|mp22|mp23|mp24|mp25|mp26|mp27|mp28|mp29|mp30|mp31|mp32|mp33|mp34|mp35|mp36|mp37|mp38|mp39|mp40|mp41|mp42|mp43|mp44|mp45|mp46|mp47|mp48|mp49|mp50|mp51|mp52|mp53|mp54|mp55|mp56|mp57|mp58|mp59|mp60|mp61|mp62|mp63|mp64|mp65|mp66|mp67|mp68|mp69|mp70|mp71|mp72|mp73|mp74|mp75|mp76|mp77|mp78|mp79|mp80|mp81|mp82|mp83|mp84|mp85|mp86|mp87|mp88|mp89|mp90|mp91|mp92|mp93|mp94|mp95|mp96|mp97|mp98|mp99|mp100|mp101|mp102|mp103|mp104|mp105|mp106|mp107|mp108|mp109|mp110|mp111|mp112|mp113|mp114|mp115|mp116|mp117|mp118|mp119|mp120|mp121|mp122|mp123|mp124|mp125|mp126|mp127|mp128|mp129|mp130|mp131|mp132|mp133|mp134|mp135|mp136|mp137|mp138|mp139|mp140|mp141|mp142|mp143|mp144|mp145|mp146|mp147|mp148|mp149|mp150|mp151|mp152|mp153|mp154|mp155|mp156|mp157|mp158|mp159|mp160|mp161|mp162|mp163|mp164|mp165|mp166|mp167|mp168|mp169|mp170|mp171|mp172|mp173|mp174|mp175|mp176|mp177|mp178|mp179|mp180|mp181|mp182|mp183|mp184|mp185|mp186|mp187|mp188|mp189|mp190|mp191|mp192|mp193|mp194|mp195|mp196|mp197|mp198|mp199|mp200|mp201|mp202|mp203|mp204|mp205|mp206|mp207|mp208|mp209|mp210|mp211|mp212|mp213|mp214|mp215|mp216|mp217|mp218|mp219|mp220|mp221|mp222|mp223|mp224|mp225|mp226|mp227|mp228|mp229|mp230|mp231|mp232|mp233|mp234|mp235|mp236|mp237|mp238|mp239|mp240|mp241|mp242|mp243|mp244|mp245|mp246|mp247|mp248|mp249|mp250|mp251|mp252|mp253|mp254|mp255
  node                         str fmt=pve-node
  size                         str pat=\+?\d+(\.\d+)?[KMGT]?
  vmid                         int 100..999999999 fmt=pve-vmid

GET /nodes/{node}/lxc/{vmid}/status/current
  node                         str fmt=pve-node
  vmid                         int 100..999999999 fmt=pve-vmid

POST /nodes/{node}/lxc/{vmid}/status/start
  debug?                       bool
  node                         str fmt=pve-node
  skiplock?                    bool
  vmid                         int 100..999999999 fmt=pve-vmid

POST /nodes/{node}/lxc/{vmid}/status/stop
  node                         str fmt=pve-node
  overrule-shutdown?           bool
  skiplock?                    bool
  vmid                         int 100..999999999 fmt=pve-vmid

POST /nodes/{node}/lxc/{vmid}/status/shutdown
  forceStop?                   bool
  node                         str fmt=pve-node
  timeout?                     int 0..
  vmid                         int 100..999999999 fmt=pve-vmid

GET /nodes/{node}/tasks/{upid}/status
  node                         str fmt=pve-node
  upid                         str

GET /cluster/ha/resources
  type?                        str enum=ct|vm

POST /cluster/ha/resources
  comment?                     str len=..4096
  failback?                    bool @9
  group?                       str fmt=pve-configid
  max_relocate?                int 0..
  max_restart?                 int 0..
  sid                          str fmt=pve-ha-resource-or-vm-id
  state?                       str enum=started|stopped|enabled|disabled|ignored
  type?                        str enum=ct|vm

GET /cluster/ha/resources/{sid}
  sid                          str fmt=pve-ha-resource-or-vm-id

PUT /cluster/ha/resources/{sid}
  comment?                     str len=..4096
  delete?                      str len=..4096 fmt=pve-configid-list
  digest?                      str len=..64
  failback?                    bool @9
  group?                       str fmt=pve-configid
  max_relocate?                int 0..
  max_restart?                 int 0..
  sid                          str fmt=pve-ha-resource-or-vm-id
  state?                       str enum=started|stopped|enabled|disabled|ignored

DELETE /cluster/ha/resources/{sid}
  purge?                       bool @9
  sid                          str fmt=pve-ha-resource-or-vm-id

GET /nodes/{node}/storage
  content?                     str fmt=pve-storage-content-list
  enabled?                     bool
  format?                      bool
  node                         str fmt=pve-node
  storage?                     str fmt=pve-storage-id
  target?                      str fmt=pve-node

GET /nodes/{node}/storage/{storage}/content
  content?                     str fmt=pve-storage-content
  node                         str fmt=pve-node
  storage                      str fmt=pve-storage-id
  vmid?                        int 100..999999999 fmt=pve-vmid

GET /nodes/{node}/storage/{storage}/content/{volume}
  node                         str fmt=pve-node
  storage?                     str fmt=pve-storage-id
  volume                       str

DELETE /nodes/{node}/storage/{storage}/content/{volume}
  delay?                       int 1..30
  node                         str fmt=pve-node
  storage?                     str fmt=pve-storage-id
  volume                       str

GET /nodes/{node}/aplinfo
  node                         str fmt=pve-node

POST /nodes/{node}/aplinfo
  node                         str fmt=pve-node
  storage                      str fmt=pve-storage-id
  template                     str len=..255

POST /nodes/{node}/storage/{storage}/download-url
  checksum?                    str requires=checksum-algorithm
  checksum-algorithm?          str enum=md5|sha1|sha224|sha256|sha384|sha512 requires=checksum
  compression?                 str
  content                      str fmt=pve-storage-content enum=iso|vztmpl|import
  filename                     str len=..255
  node                         str fmt=pve-node
  storage                      str fmt=pve-storage-id
  url                          str pat=https?://.*
  verify-certificates?         bool

POST /nodes/{node}/storage/{storage}/upload
  checksum?                    str requires=checksum-algorithm
  checksum-algorithm?          str enum=md5|sha1|sha224|sha256|sha384|sha512 requires=checksum
  content                      str fmt=pve-storage-content enum=iso|vztmpl|import
  filename                     str len=..255
  node                         str fmt=pve-node
  storage                      str fmt=pve-storage-id
  tmpfilename?                 str pat=/var/tmp/pveupload-[0-9a-f]+

GET /access/domains

GET /access/permissions
  path?                        str
  userid?                      str pat=(?^:^(?^:[^\s:/]+)\@(?^:[A-Za-z][A-Za-z0-9\.\-_]+)(?:!(?^:[A-Za-z][A-Za-z0-9\.\-_]+))?$)

POST /access/ticket
  new-format?                  bool
  otp?                         str
  password                     str
  path?                        str len=..64 requires=privs
  privs?                       str len=..64 fmt=pve-priv-list requires=path
  realm?                       str len=..32 fmt=pve-realm
  tfa-challenge?               str
  username                     str len=..64

GET /access/roles

POST /access/roles
  privs?                       str fmt=pve-priv-list
  roleid                       str fmt=pve-roleid

GET /access/roles/{roleid}
  roleid                       str fmt=pve-roleid

PUT /access/roles/{roleid}
  append?                      bool requires=privs
  privs?                       str fmt=pve-priv-list
  roleid                       str fmt=pve-roleid

GET /access/users
  enabled?                     bool
  full?                        bool

POST /access/users
  comment?                     str len=..2048
  email?                       str len=..254 fmt=email-opt
  enable?                      bool
  expire?                      int 0..
  firstname?                   str len=..1024
  groups?                      str fmt=pve-groupid-list
  keys?                        str pat=[0-9a-zA-Z!=]{0,4096}
  lastname?                    str len=..1024
  password?                    str len=8..64
  userid                       str len=..64 fmt=pve-userid

GET /access/acl

PUT /access/acl
  delete?                      bool
  groups?                      str fmt=pve-groupid-list
  path                         str
  propagate?                   bool
  roles                        str fmt=pve-roleid-list
  tokens?                      str fmt=pve-tokenid-list
  users?                       str fmt=pve-userid-list

POST /access/users/{userid}/token/{tokenid}
  comment?                     str
  expire?                      int 0..
  privsep?                     bool
  tokenid                      str pat=(?^:[A-Za-z][A-Za-z0-9\.\-_]+)
  userid                       str len=..64 fmt=pve-userid

DELETE /access/users/{userid}/token/{tokenid}
  tokenid                      str pat=(?^:[A-Za-z][A-Za-z0-9\.\-_]+)
  userid                       str len=..64 fmt=pve-userid
"##;
