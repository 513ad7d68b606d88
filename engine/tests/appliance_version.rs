//! The appliance version the engine names templates by, the one the
//! simulator's nodes hold, and the one `appliances/build.sh` builds
//! (`appliances/VERSION`) are the same.

use orbitlab_engine::reconcile::plan::{APPLIANCE_VERSION, default_appliance_template};
use orbitlab_manifests::ApplianceRole;

#[test]
fn the_engine_the_simulator_and_the_recipes_agree_on_the_appliance_version() {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../appliances/VERSION");
    let text = std::fs::read_to_string(file).expect("appliances/VERSION");
    let built = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("version="))
        .expect("a version= line");
    assert_eq!(built, APPLIANCE_VERSION);
    assert_eq!(orbitlab_sim::pve::APPLIANCE_VERSION, APPLIANCE_VERSION);
    for role in ApplianceRole::ALL {
        let template = format!("local:{}", default_appliance_template(role));
        assert!(
            orbitlab_sim::pve::APPLIANCE_TEMPLATES.contains(&template.as_str()),
            "{template}"
        );
        // The name `build.sh` gives its output.
        assert_eq!(
            template,
            format!(
                "local:vztmpl/orbitlab-{}_{built}_amd64.tar.zst",
                role.as_str()
            )
        );
    }
}
