//! One JSON spelling per value: the model (`mln show`), the planner's
//! view and its plans, and the state store write every platform and goal
//! the same way, which is also their `Display` and what `FromStr` reads.

use mln_lang::model::Platform;
use mln_lang::plan::{diff, DesiredProject, Goal, PlanOptions};

const PROJECT: &str = "global { project spell }\n\
    host u { uml }\nhost x { xen; kernel /k }\nhost h { hvm }\nhost k { kvm }\n";

#[test]
fn platforms_are_spelled_the_same_everywhere() {
    let checked = mln_lang::load_str("spell.mln", PROJECT).unwrap_or_else(|r| panic!("{r}"));
    let model = serde_json::to_value(checked.project()).unwrap();
    let desired = DesiredProject::from_project(checked.project());
    let planned = serde_json::to_value(&desired).unwrap();
    let mut seen = Vec::new();
    for host in &checked.project().hosts {
        let in_model = model["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["name"] == host.name.as_str())
            .unwrap()["platform"]
            .clone();
        let in_plan = planned["hosts"][host.name.as_str()]["platform"].clone();
        let shown = host.platform.to_string();
        assert_eq!(
            in_model,
            serde_json::Value::String(shown.clone()),
            "{}",
            host.name
        );
        assert_eq!(in_plan, in_model, "{}", host.name);
        assert_eq!(shown.parse::<Platform>(), Ok(host.platform));
        seen.push(shown);
    }
    seen.sort();
    assert_eq!(seen, ["hvm", "kvm", "uml", "xen"]);
}

#[test]
fn goals_are_spelled_the_same_in_plans_and_text() {
    let checked = mln_lang::load_str("spell.mln", PROJECT).unwrap_or_else(|r| panic!("{r}"));
    let desired = DesiredProject::from_project(checked.project());
    for goal in Goal::ALL {
        let plan = diff(&desired, &desired, &PlanOptions::new(goal)).unwrap();
        let json = serde_json::to_value(&plan).unwrap();
        assert_eq!(json["goal"], goal.to_string());
        assert_eq!(goal.to_string().parse::<Goal>(), Ok(goal));
    }
}
