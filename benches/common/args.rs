//! Command-line parsing shared by the benchmarks: the arguments that `cargo bench` and test
//! runners pass, option values, and what `main` does for `--help`, a test runner and an
//! invalid argument.
//!
//! A benchmark includes it with `#[path = "common/args.rs"] mod args;`, writes a `USAGE`
//! text, and handles its own options in the closure it gives to [`parse`].

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail};

/// The run that a command line requests.
pub enum Invocation<T> {
    /// Run the benchmark with these options.
    Run(T),
    /// Started by a test runner rather than `cargo bench` (no `--bench` argument, as under
    /// `cargo test --all-targets`): run nothing.
    NotBench,
    /// A test runner listing tests: there are none.
    List,
    Help,
}

impl<T> Invocation<T> {
    /// Converts the options of a run with `convert`, which may reject them.
    pub fn try_map<U>(
        self,
        convert: impl FnOnce(T) -> anyhow::Result<U>,
    ) -> anyhow::Result<Invocation<U>> {
        Ok(match self {
            Invocation::Run(options) => Invocation::Run(convert(options)?),
            Invocation::NotBench => Invocation::NotBench,
            Invocation::List => Invocation::List,
            Invocation::Help => Invocation::Help,
        })
    }
}

/// The arguments not yet parsed, from which an option takes its value.
pub struct Args {
    rest: std::vec::IntoIter<String>,
    usage: &'static str,
}

impl Args {
    /// Takes the value that follows option `name`.
    pub fn value(&mut self, name: &str) -> anyhow::Result<String> {
        self.rest
            .next()
            .ok_or_else(|| anyhow!("{name} needs a value\n\n{}", self.usage))
    }

    /// Takes the value of option `name` as a whole number above 0 that fits `N`.
    pub fn positive<N: TryFrom<u64>>(&mut self, name: &str) -> anyhow::Result<N> {
        let text = self.value(name)?;
        let number = parse_positive(&text, name)?;
        N::try_from(number).map_err(|_| anyhow!("{name} {number} is too large"))
    }

    /// Takes the value of option `name` as a path.
    pub fn path(&mut self, name: &str) -> anyhow::Result<PathBuf> {
        Ok(PathBuf::from(self.value(name)?))
    }

    /// Takes the value of option `name`, which must be one of the names in `choices`, and
    /// returns the value paired with it.
    pub fn choice<T: Clone>(&mut self, name: &str, choices: &[(&str, T)]) -> anyhow::Result<T> {
        let text = self.value(name)?;
        if let Some((_, value)) = choices.iter().find(|(key, _)| *key == text) {
            return Ok(value.clone());
        }
        let names: Vec<&str> = choices.iter().map(|(key, _)| *key).collect();
        bail!("invalid {name} {text:?}; expected {}", names.join(" or "))
    }
}

/// Parses a whole number above 0 given for option `name`.
pub fn parse_positive(text: &str, name: &str) -> anyhow::Result<u64> {
    match text.parse::<u64>() {
        Ok(value) if value > 0 => Ok(value),
        _ => bail!("invalid {name} {text:?}; expected a whole number above 0"),
    }
}

/// Parses `args`, the arguments after the program name, into `options`.
///
/// `--bench`, `--list`, `--help` and `-h` are handled here. `option` handles every other
/// argument: it takes the option's value from its [`Args`], if it has one, and returns
/// `Ok(false)` for an argument it does not know, which makes the parse fail.
pub fn parse<T>(
    args: Vec<String>,
    usage: &'static str,
    mut options: T,
    mut option: impl FnMut(&mut T, &str, &mut Args) -> anyhow::Result<bool>,
) -> anyhow::Result<Invocation<T>> {
    let mut bench = false;
    let mut rest = Args {
        rest: args.into_iter(),
        usage,
    };
    while let Some(arg) = rest.rest.next() {
        match arg.as_str() {
            "--bench" => bench = true,
            "--list" => return Ok(Invocation::List),
            "--help" | "-h" => return Ok(Invocation::Help),
            _ => {
                if !option(&mut options, &arg, &mut rest)? {
                    bail!("unknown argument {arg:?}\n\n{usage}");
                }
            }
        }
    }
    Ok(if bench {
        Invocation::Run(options)
    } else {
        Invocation::NotBench
    })
}

/// Returns the options of a run, or the exit code of benchmark `name` when there is nothing
/// to run. The code is 0 after the help, for a test runner and for a listing, and 2 after
/// printing the error of an invalid argument.
pub fn options_or_exit<T>(
    name: &str,
    usage: &str,
    parsed: anyhow::Result<Invocation<T>>,
) -> Result<T, ExitCode> {
    match parsed {
        Ok(Invocation::Run(options)) => Ok(options),
        Ok(Invocation::NotBench) => {
            println!("{name}: not run; start it with `cargo bench --bench {name}`");
            Err(ExitCode::SUCCESS)
        }
        Ok(Invocation::List) => Err(ExitCode::SUCCESS),
        Ok(Invocation::Help) => {
            print!("{usage}");
            Err(ExitCode::SUCCESS)
        }
        Err(err) => {
            eprintln!("{name}: {err:#}");
            Err(ExitCode::from(2))
        }
    }
}

/// Returns the command that started benchmark `name` with `args`, such as
/// `cargo bench --bench NAME -- --quick`, for its report.
pub fn command_line(name: &str, args: &[String]) -> String {
    let passed: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|arg| *arg != "--bench")
        .collect();
    let command = format!("cargo bench --bench {name}");
    if passed.is_empty() {
        command
    } else {
        format!("{command} -- {}", passed.join(" "))
    }
}
