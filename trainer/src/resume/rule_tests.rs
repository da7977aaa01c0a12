use super::*;
use clap::Args;

#[test]
fn every_option_of_fit_has_exactly_one_rule() {
    let command = FitOptions::augment_args(clap::Command::new("fit"));
    let mut ids: Vec<String> = command
        .get_arguments()
        .map(|arg| arg.get_id().to_string())
        .collect();
    ids.sort();
    let mut ruled: Vec<String> = RULES.iter().map(|rule| rule.id.to_string()).collect();
    ruled.sort();
    assert_eq!(
        ids, ruled,
        "an option of `trainer fit` without a rule, or a rule without one"
    );
}

#[test]
fn the_message_names_every_changeable_option() {
    assert_eq!(
        changeable(),
        "--epochs, --teacher, --data, --test-limit, --export, --export-q8, --weight-bits \
         and --patience"
    );
}

/// The defaults, and options that differ from them in every field.
fn two_option_sets() -> (FitOptions, FitOptions) {
    #[derive(clap::Parser)]
    struct Fit {
        #[command(flatten)]
        options: FitOptions,
    }
    let parse = |args: &[&str]| <Fit as clap::Parser>::parse_from(args).options;
    let base = parse(&["fit"]);
    let mut other = parse(&[
        "fit",
        "--model",
        "wide",
        "--epochs",
        "7",
        "--batch",
        "32",
        "--lr",
        "0.5",
        "--optimizer",
        "adam",
        "--weight-decay",
        "0.1",
        "--schedule",
        "cosine",
        "--label-smoothing",
        "0.2",
        "--no-augment",
        "--replicas",
        "2",
        "--distill-weight",
        "0.5",
        "--distill-temperature",
        "2",
        "--seed",
        "7",
        "--out",
        "o",
        "--data",
        "d",
        "--val",
        "10",
        "--train-limit",
        "100",
        "--test-limit",
        "10",
        "--device",
        "cuda",
        "--export",
        "e.onnx",
        "--export-q8",
        "e.q8",
        "--weight-bits",
        "7",
        "--patience",
        "3",
        "--teacher",
        "t.onnx",
    ]);
    // The one pair of options that exclude each other on the command line.
    other.recipe.augment = true;
    (base, other)
}

#[test]
fn each_rule_copies_its_own_option_and_no_other() {
    let (base, other) = two_option_sets();
    for rule in RULES {
        let mut copied = base.clone();
        (rule.copy)(&mut copied, &other);
        assert_ne!(copied, base, "{} copied nothing", rule.id);
        // Copying every other rule's option too gives `other` exactly.
        for rest in RULES.iter().filter(|r| r.id != rule.id) {
            (rest.copy)(&mut copied, &other);
        }
        assert_eq!(copied, other, "{}", rule.id);
        if let Some(forget) = rule.forget {
            let mut cleared = other.clone();
            forget(&mut cleared);
            assert_ne!(cleared, other, "{} forgot nothing", rule.id);
        }
    }
}
