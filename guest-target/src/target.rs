//! Is the guest target installed for the toolchain running this build, and if not, can rustup
//! install it? Shared by this crate's build script and `host/build.rs` (through `#[path]`), and
//! unit-tested here with a fake sysroot and a fake installer.

use std::fmt;
use std::path::PathBuf;
use std::process::Command;

/// The target every node component is compiled for.
pub const GUEST_TARGET: &str = "wasm32-wasip2";

/// The toolchain a build runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toolchain {
    /// `rustc --print sysroot`.
    pub sysroot: PathBuf,
    /// The rustup toolchain name, when rustup manages this toolchain.
    pub rustup_name: Option<String>,
}

/// What [`ensure`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    /// The target was installed already.
    Present,
    /// It was missing; rustup installed it.
    Installed { command: String },
}

/// The target is missing and this build could not install it: the command that fixes it, and
/// why the build did not (or could not) run it itself.
#[derive(Debug, PartialEq, Eq)]
pub struct Missing {
    pub command: String,
    pub why: String,
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the {GUEST_TARGET} target is not installed ({}); run `{}` and build again",
            self.why, self.command
        )
    }
}

impl Toolchain {
    /// The toolchain cargo runs this build script with; `None` when rustc cannot say (the
    /// guest build will then report what is wrong).
    pub fn of_this_build() -> Option<Toolchain> {
        let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
        let output = Command::new(rustc)
            .args(["--print", "sysroot"])
            .output()
            .ok()
            .filter(|o| o.status.success())?;
        let sysroot = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        // rustup's proxies name the toolchain for the processes they start; a rustc run
        // without the proxy still lives in `<rustup home>/toolchains/<name>`.
        let rustup_name = std::env::var("RUSTUP_TOOLCHAIN").ok().or_else(|| {
            let parent = sysroot.parent()?;
            (parent.file_name()? == "toolchains")
                .then(|| sysroot.file_name()?.to_str().map(str::to_owned))
                .flatten()
        });
        Some(Toolchain {
            sysroot,
            rustup_name,
        })
    }

    /// Where the target's standard library lives in the sysroot.
    pub fn target_libdir(&self) -> PathBuf {
        self.sysroot
            .join("lib")
            .join("rustlib")
            .join(GUEST_TARGET)
            .join("lib")
    }

    pub fn has_target(&self) -> bool {
        self.target_libdir().is_dir()
    }

    /// The command that installs the target for this toolchain.
    pub fn install_command(&self) -> Vec<String> {
        let mut command: Vec<String> = ["rustup", "target", "add", GUEST_TARGET]
            .map(String::from)
            .into();
        if let Some(name) = &self.rustup_name {
            command.extend(["--toolchain".to_string(), name.clone()]);
        }
        command
    }
}

/// Makes sure `toolchain` has the guest target: when it is missing and rustup manages the
/// toolchain, runs `rustup target add` through `run` (program and arguments; `Err` says why it
/// failed). Without rustup nothing is run and the error carries the command to use.
pub fn ensure(
    toolchain: &Toolchain,
    run: impl FnOnce(&[String]) -> Result<(), String>,
) -> Result<Found, Missing> {
    if toolchain.has_target() {
        return Ok(Found::Present);
    }
    let command = toolchain.install_command();
    let shown = command.join(" ");
    if toolchain.rustup_name.is_none() {
        return Err(Missing {
            command: shown,
            why: format!(
                "the toolchain at {} is not managed by rustup, so this build cannot add it; \
                 without rustup, install the target's standard library the way the toolchain \
                 was installed",
                toolchain.sysroot.display()
            ),
        });
    }
    match run(&command) {
        Ok(()) if toolchain.has_target() => Ok(Found::Installed { command: shown }),
        Ok(()) => Err(Missing {
            command: shown,
            why: "rustup reported success but the target is still missing".to_string(),
        }),
        Err(why) => Err(Missing {
            command: shown,
            why: format!("installing it failed: {why}"),
        }),
    }
}

/// Runs a command, its output going to the build log; `Err` says why it failed.
pub fn run_command(command: &[String]) -> Result<(), String> {
    let (program, args) = command.split_first().ok_or("empty command")?;
    match Command::new(program).args(args).status() {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!("`{}` exited with {status}", command.join(" "))),
        Err(err) => Err(format!("cannot run {program}: {err}")),
    }
}

/// The build-script entry point: installs the target or stops the build with the command.
pub fn ensure_from_build_script() {
    println!("cargo:rerun-if-env-changed=RUSTUP_TOOLCHAIN");
    let Some(toolchain) = Toolchain::of_this_build() else {
        return;
    };
    // This crate's build script and host/build.rs can run at the same moment; two concurrent
    // `rustup target add` runs make one of them fail. The second waits and finds it installed.
    let _installing = install_lock();
    match ensure(&toolchain, run_command) {
        Ok(Found::Present) => {}
        Ok(Found::Installed { command }) => {
            println!(
                "cargo:warning={GUEST_TARGET} target was missing; installed it with `{command}`"
            );
        }
        Err(missing) => {
            println!("cargo:warning={missing}");
            eprintln!("error: {missing}");
            std::process::exit(1);
        }
    }
    // Check again if the target is removed (the path exists now, so this does not rerun
    // every build).
    println!(
        "cargo:rerun-if-changed={}",
        toolchain.target_libdir().display()
    );
}

/// An exclusive lock on a file in the temp dir, held while the target is checked and
/// installed; `None` (no lock, only a lost race) when the file cannot be opened or locked.
fn install_lock() -> Option<std::fs::File> {
    let path = std::env::temp_dir().join(format!("airlock-{GUEST_TARGET}-install.lock"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .ok()?;
    file.lock().ok()?;
    Some(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// A toolchain whose sysroot is a temp dir, removed when the test is done with it.
    struct TempSysroot(Toolchain);

    impl std::ops::Deref for TempSysroot {
        type Target = Toolchain;
        fn deref(&self) -> &Toolchain {
            &self.0
        }
    }

    impl std::ops::DerefMut for TempSysroot {
        fn deref_mut(&mut self) -> &mut Toolchain {
            &mut self.0
        }
    }

    impl Drop for TempSysroot {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0.sysroot);
        }
    }

    /// A sysroot in the temp dir, with or without the target's library directory.
    fn sysroot(name: &str, with_target: bool) -> TempSysroot {
        let sysroot = std::env::temp_dir().join(format!(
            "airlock-guest-target-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&sysroot);
        std::fs::create_dir_all(&sysroot).expect("temp dir is writable");
        let toolchain = Toolchain {
            sysroot,
            rustup_name: Some("stable-x86_64-unknown-linux-gnu".into()),
        };
        if with_target {
            std::fs::create_dir_all(toolchain.target_libdir()).expect("temp dir is writable");
        }
        TempSysroot(toolchain)
    }

    #[test]
    fn present_target_runs_nothing() {
        let toolchain = sysroot("present", true);
        let found = ensure(&toolchain, |_| panic!("nothing to install"));
        assert_eq!(found, Ok(Found::Present));
    }

    #[test]
    fn missing_target_is_installed_with_rustup_for_this_toolchain() {
        let toolchain = sysroot("install", false);
        let ran = RefCell::new(Vec::new());
        let found = ensure(&toolchain, |command| {
            ran.borrow_mut().push(command.join(" "));
            std::fs::create_dir_all(toolchain.target_libdir()).map_err(|e| e.to_string())
        });
        let expected =
            "rustup target add wasm32-wasip2 --toolchain stable-x86_64-unknown-linux-gnu";
        assert_eq!(ran.into_inner(), vec![expected.to_string()]);
        assert_eq!(
            found,
            Ok(Found::Installed {
                command: expected.into()
            })
        );
    }

    #[test]
    fn failed_install_names_the_command_and_the_cause() {
        let toolchain = sysroot("offline", false);
        let missing = ensure(&toolchain, |_| Err("could not download".into())).unwrap_err();
        let message = missing.to_string();
        assert!(
            message.contains(
                "run `rustup target add wasm32-wasip2 --toolchain stable-x86_64-unknown-linux-gnu`"
            ),
            "{message}"
        );
        assert!(message.contains("could not download"), "{message}");
        // rustup saying yes while the target is still absent is a failure too.
        let missing = ensure(&toolchain, |_| Ok(())).unwrap_err();
        assert!(missing.why.contains("still missing"), "{missing}");
    }

    #[test]
    fn without_rustup_nothing_runs_and_the_command_is_given() {
        let mut toolchain = sysroot("no-rustup", false);
        toolchain.rustup_name = None;
        let missing = ensure(&toolchain, |_| panic!("no rustup to run")).unwrap_err();
        assert_eq!(missing.command, "rustup target add wasm32-wasip2");
        assert!(missing.why.contains("not managed by rustup"), "{missing}");
    }
}
