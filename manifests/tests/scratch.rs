use orbitlab_manifests::*;

fn show(label: &str, text: &str) {
    match decode(label, text) {
        Ok(docs) => {
            for d in &docs {
                println!("OK {label}: line {:?} kind {} name {}", d.line, d.kind(), d.name());
            }
        }
        Err(e) => println!("ERR {label}: {e}"),
    }
}

#[test]
fn scratch() {
    show("g.yaml", "apiVersion: orbitlab.io/v1\nkind: Lxc\nmetadata:\n  name: web\nspec:\n  template: local:vztmpl/x.tar.zst\n");
    show("g2.yaml", "apiVersion: orbitlab.io/v1\nkind: Lxc\nmetadata:\n  name: web\nspec: {}\n");
    show("g3.yaml", "apiVersion: orbitlab.io/v1\nkind: Lxc\nmetadata:\n  name: web\nspec:\n  ssh_keys:\n    - a\n  template: local:vztmpl/x.tar.zst\n  subnet: x\n---\nkind: Sector\n");
    show("g4.yaml", "apiVersion: orbitlab.io/v1\nkind: Sector\nmetadata:\n  name: web\nspec:\n  cidr: 10.0.0.0/16\n  subnets:\n    - name: a\n    - cidr: 10.0.0.0/24\n      name: b\n");
    show("n.yaml", "apiVersion: orbitlab.io/v1\nkind: Sector\nspec:\n  cidr: 10.0.0.0/16\n");
    show("i.yaml", &format!("{}{}\n", "[".repeat(10000), "]".repeat(10000)));
    show("i2.yaml", &format!("spec: {}{}\nkind: Sector\n", "[".repeat(10000), "]".repeat(10000)));
    let mut block = String::from("spec:\n");
    for d in 0..100 { block.push_str(&" ".repeat(2 * d + 2)); block.push_str("- \n"); }
    show("i3.yaml", &block);
    show("j.yaml", "spec: {a: &a [x,x,x,x,x,x,x,x,x], b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a], c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b], d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c], e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d], f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]}\nkind: Secret\n");
    show("o.yaml", "just a string\n");
}
