//! The keys of the property-string formats (`net[n]`, `rootfs`, `mp[n]`...)
//! used by the LXC endpoints, in the same line syntax as `endpoints.rs`.

pub const FORMATS: &str = r##"
FORMAT lxc-dev
  deny-write?                  bool
  gid?                         int 0..
  mode?                        str pat=0[0-7]{3}
  path?                        str fmt=pve-lxc-dev-string default_key
  uid?                         int 0..

FORMAT lxc-features
  force_rw_sys?                bool
  fuse?                        bool
  keyctl?                      bool
  mknod?                       bool
  mount?                       str pat=(?^:[a-zA-Z0-9_; ]+)
  nesting?                     bool

FORMAT lxc-mp
  acl?                         bool
  backup?                      bool
  keepattrs?                   bool @9
  mountoptions?                str pat=(?^:(?^:(discard|lazytime|noatime|nodev|noexec|nosuid))(;(?^:(discard|lazytime|noatime|nodev|noexec|nosuid)))*)
  mp                           str fmt=pve-lxc-mp-string
  quota?                       bool
  replicate?                   bool
  ro?                          bool
  shared?                      bool
  size?                        str fmt=disk-size
  volume                       str fmt=pve-lxc-mp-string default_key

FORMAT lxc-net
  bridge?                      str pat=[-_.\w\d]+
  firewall?                    bool
  gw?                          str fmt=ipv4
  gw6?                         str fmt=ipv6
  host-managed?                bool @9
  hwaddr?                      str fmt=mac-addr
  ip?                          str fmt=pve-ipv4-config
  ip6?                         str fmt=pve-ipv6-config
  link_down?                   bool
  mtu?                         int 64..65535
  name                         str pat=[-_.\w\d]+
  rate?                        num
  tag?                         int 1..4094
  trunks?                      str pat=(?^:\d+(?:;\d+)*)
  type?                        str enum=veth

FORMAT lxc-rootfs
  acl?                         bool
  mountoptions?                str pat=(?^:(?^:(discard|lazytime|noatime|nodev|noexec|nosuid))(;(?^:(discard|lazytime|noatime|nodev|noexec|nosuid)))*)
  quota?                       bool
  replicate?                   bool
  ro?                          bool
  shared?                      bool
  size?                        str fmt=disk-size
  volume                       str fmt=pve-lxc-mp-string default_key

FORMAT lxc-unused
  volume                       str fmt=pve-volume-id default_key
"##;
