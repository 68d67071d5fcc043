//! Command-line arguments (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const EXIT_CODES: &str = "\
Exit codes:
  0  success (warnings may have been printed)
  1  the project has errors, an operation failed, or an upgrade was not
     confirmed (answered no, or no terminal to ask on and no --yes)
  2  bad command-line usage";

/// Build and run networks of virtual machines from MLN project files.
#[derive(Debug, Parser)]
#[command(name = "mln", version, after_help = EXIT_CODES)]
pub struct Cli {
    /// Log what is being done.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// When to colour output.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    #[command(subcommand)]
    pub command: Command,
}

/// Colour choice; `auto` means on a terminal and without `NO_COLOR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless `NO_COLOR` is set.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check project files; print every error and warning.
    Check(CheckArgs),
    /// Print the resolved project as JSON or canonical MLN text.
    Show(ShowArgs),
    /// MLN-compatible queries: print one resolved value or list.
    Parse(ParseArgs),
    /// Prepare every host (disks, guest configuration, switches); start nothing.
    Build(LifecycleArgs),
    /// Build what is missing and start every host.
    #[command(visible_alias = "start")]
    Up(LifecycleArgs),
    /// Stop every running host; keep disks and configuration.
    #[command(visible_alias = "stop")]
    Down(LifecycleArgs),
    /// Show the plan of a changed project file, ask, and apply it to the
    /// running project.
    Upgrade(UpgradeArgs),
    /// Place a server's hosts on the project's other servers; a server
    /// that does not answer is given up for lost and its hosts start from
    /// their disks where storage is shared, else are made afresh.
    Evacuate(EvacuateArgs),
    /// Stop and delete everything the project made.
    Remove(LifecycleArgs),
    /// A project whose state file is damaged: keep the file aside, end what
    /// the project still runs here (and, given its file with -f, remove its
    /// hosts on its servers) and forget it.
    Recover(LifecycleArgs),
    /// Show what `upgrade` would do, without doing it.
    Plan(PlanArgs),
    /// Show what going from project file OLD (as if running) to NEW takes;
    /// touches no state and no machine.
    Diff(DiffArgs),
    /// Show every host and switch of recorded projects.
    Status(StatusArgs),
    /// List recorded projects, one line each.
    List(ListArgs),
    /// Print a host's console log.
    Log(LogArgs),
    /// Draw the project's topology (Graphviz DOT or Mermaid).
    Graph(GraphArgs),
    /// Run a server's part of projects for a managing mln: JSON lines on
    /// stdin/stdout, started by that mln over ssh (docs/agent-protocol.md).
    Agent(AgentArgs),
    /// The UML kernel guests boot with: show it, or fetch one that boots
    /// on this host.
    Kernel(KernelArgs),
    /// Check which backends work on this host, why not, and what fixes it.
    Doctor(DoctorArgs),
    /// Print the settings in force (site files, environment, flags) and
    /// where each came from.
    Config(ConfigArgs),
    /// Run a command in a running guest (through its agent: no network,
    /// no root) and exit with its status.
    Exec(ExecArgs),
    /// Log into a guest with ssh from this machine, through a tap of its
    /// own on the guest's switch (`mln ssh lab-alice/router`).
    Ssh(SshArgs),
    /// Run a command on a project switch's network, from a tap of its own
    /// in a network namespace of its own (`ping`, `tcpdump`, `nmap`).
    SwitchExec(SwitchExecArgs),
    /// The inside of `ssh` and `switch-exec`: plug a tap into the switch,
    /// run the command, unplug.
    #[command(hide = true)]
    EnterSwitch(EnterSwitchArgs),
    /// Forward a TCP port of this machine to a guest's port (22 unless
    /// `--to`), for people outside it: runs until stopped.
    Forward(ForwardArgs),
    /// The inside of `forward`: accept on the listener given as stdin,
    /// connect to the guest from the switch's namespace.
    #[command(hide = true)]
    ForwardInside(ForwardInsideArgs),
    /// This terminal on a running guest's console (a login prompt);
    /// Ctrl-] leaves it.
    Console(ConsoleArgs),
    /// Make a project's hosts (or some) afresh from their templates and
    /// configuration, each keeping its run state: what their guests wrote
    /// to disk is lost.
    Reset(ResetArgs),
    /// Bring every persistent project (`global { persistent }`) with a
    /// host down back up, as after the server restarted; `--install`
    /// writes a systemd unit that does it at boot.
    #[command(name = "check-persistent", visible_alias = "check_persistent")]
    CheckPersistent(CheckPersistentArgs),
    /// A class: one copy of the project per student of a roster
    /// (`PROJECT-STUDENT`), built, started, shown, stopped or removed
    /// together.
    Class(ClassArgs),
    /// Build, import, register and list guest templates (the templates
    /// folder).
    Template(TemplateArgs),
    /// Write a stopped project (its record and its hosts' disks, not the
    /// templates) to one archive file.
    Export(ExportArgs),
    /// Bring back a project from an archive `mln export` wrote, here or
    /// on another machine with the same templates.
    Import(ImportArgs),
    /// Remove what crashed runs left on this machine: processes and
    /// folders of projects with no record, scratch files, disks of hosts
    /// no record has. What a recorded project owns is never touched.
    Clean(CleanArgs),
}

/// `mln clean [-n]`.
#[derive(Debug, Args)]
pub struct CleanArgs {
    /// Print what would be removed; remove nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Folder of project states.
    #[arg(long, env = "MLN_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Folder of templates (default: STATE_DIR/templates).
    #[arg(long)]
    pub template_dir: Option<PathBuf>,
}

/// `mln export -p PROJECT FILE`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The project, by name (its hosts stopped).
    #[arg(short = 'p', long)]
    pub project: String,
    /// The archive to write (a tar file; never replaced).
    pub file: PathBuf,
    /// Folder of project states.
    #[arg(long, env = "MLN_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

/// `mln import FILE`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The archive `mln export` wrote.
    pub file: PathBuf,
    /// Folder of project states to import into.
    #[arg(long, env = "MLN_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Folder of templates (default: STATE_DIR/templates).
    #[arg(long)]
    pub template_dir: Option<PathBuf>,
}

/// `mln console -p PROJECT HOST`.
#[derive(Debug, Args)]
pub struct ConsoleArgs {
    /// The project, by name.
    #[arg(short = 'p', long)]
    pub project: String,
    /// The host.
    pub host: String,
    /// Folder of project states.
    #[arg(long, env = "MLN_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

/// `mln exec -p PROJECT HOST -- COMMAND...`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The project, by name.
    #[arg(short = 'p', long)]
    pub project: String,
    /// The host.
    pub host: String,
    /// The command and its arguments (after `--`).
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
    /// Seconds the command may take.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
    /// Folder of project states.
    #[arg(long, env = "MLN_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

/// `mln ssh [-p PROJECT] PROJECT/HOST [-- COMMAND...]`.
#[derive(Debug, Args)]
pub struct SshArgs {
    /// `PROJECT/HOST`, or `HOST` with `-p PROJECT`.
    pub target: String,
    /// The project, by name (when the target is a host alone).
    #[arg(short = 'p', long)]
    pub project: Option<String>,
    /// The user to log in as.
    #[arg(short = 'l', long = "login", default_value = "root")]
    pub user: String,
    /// A private key to log in with (repeatable; default: ssh's own).
    #[arg(short = 'i', value_name = "KEY")]
    pub identities: Vec<PathBuf>,
    /// A command to run instead of a login shell (after `--`).
    #[arg(last = true)]
    pub command: Vec<String>,
    /// Folder of project states.
    #[arg(long, env = "MLN_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

/// `mln switch-exec -p PROJECT SWITCH [--address A/N] -- COMMAND...`.
#[derive(Debug, Args)]
pub struct SwitchExecArgs {
    /// The project, by name.
    #[arg(short = 'p', long)]
    pub project: String,
    /// The switch.
    pub switch: String,
    /// The address to take, `A.B.C.D/N` (default: the highest one of the
    /// subnet of the switch's first addressed interface that no host of
    /// the project has).
    #[arg(long, value_name = "A.B.C.D/N")]
    pub address: Option<String>,
    /// The command and its arguments (after `--`).
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
    /// Folder of project states.
    #[arg(long, env = "MLN_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

/// `mln enter-switch` (hidden): run by `unshare` for `ssh` and
/// `switch-exec`.
#[derive(Debug, Args)]
pub struct EnterSwitchArgs {
    /// The switch's vde control folder.
    #[arg(long)]
    pub socket: PathBuf,
    /// The tap's address, `A.B.C.D/N`.
    #[arg(long)]
    pub address: String,
    /// The command and its arguments (after `--`).
    #[arg(last = true, required = true)]
    pub command: Vec<std::ffi::OsString>,
}

/// `mln forward PROJECT/HOST --port N [--to PORT] [--listen ADDR]
/// [--background]`, `mln forward --stop -p PROJECT [--port N]`.
#[derive(Debug, Args)]
pub struct ForwardArgs {
    /// `PROJECT/HOST`, or `HOST` with `-p PROJECT`.
    #[arg(required_unless_present = "stop")]
    pub target: Option<String>,
    /// The project, by name (when the target is a host alone).
    #[arg(short = 'p', long)]
    pub project: Option<String>,
    /// The port of this machine that people connect to.
    #[arg(long, required_unless_present = "stop")]
    pub port: Option<u16>,
    /// Run in the background, recorded with the project: `mln forward
    /// --stop`, `mln stop` and `mln remove` end it.
    #[arg(long, conflicts_with = "stop")]
    pub background: bool,
    /// End the project's forwards running in the background (only the one
    /// on `--port` if given).
    #[arg(long, requires = "project")]
    pub stop: bool,
    /// The guest's port.
    #[arg(long, default_value_t = 22)]
    pub to: u16,
    /// The address of this machine to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    pub listen: std::net::IpAddr,
    /// Folder of project states.
    #[arg(long, env = "MLN_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

/// `mln forward-inside --to A.B.C.D:PORT` (hidden), its listener on stdin.
#[derive(Debug, Args)]
pub struct ForwardInsideArgs {
    /// Where each connection goes.
    #[arg(long)]
    pub to: std::net::SocketAddr,
}

/// `mln template`.
#[derive(Debug, Args)]
pub struct TemplateArgs {
    #[command(subcommand)]
    pub action: TemplateAction,
    /// Folder of project states (the templates folder is its `templates`
    /// unless the site or --template-dir says otherwise).
    #[arg(long, env = "MLN_STATE_DIR", global = true)]
    pub state_dir: Option<PathBuf>,
    /// Folder of templates (default: STATE_DIR/templates).
    #[arg(long, global = true)]
    pub template_dir: Option<PathBuf>,
}

/// A template `mln template build` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TemplateKind {
    /// Debian (12 unless --suite) with systemd and OpenSSH, by mmdebstrap.
    Debian,
    /// The small busybox root hosts get by default.
    Busybox,
}

/// What `mln template` does.
#[derive(Debug, Subcommand)]
pub enum TemplateAction {
    /// Build a template into the templates folder (an unchanged one is not
    /// built again).
    Build {
        /// Which template.
        #[arg(value_enum)]
        kind: TemplateKind,
        /// Build into this folder instead of the templates folder.
        #[arg(long)]
        out: Option<PathBuf>,
        /// The Debian suite (`bookworm` is Debian 12).
        #[arg(long, default_value = mln_core::template::DEFAULT_SUITE)]
        suite: String,
        /// More Debian packages to install (repeatable).
        #[arg(long = "package", value_name = "NAME")]
        packages: Vec<String>,
        /// The image's size (`1G`, `512M`): what a host's root disk holds
        /// unless it asks for more with `size`.
        #[arg(long)]
        size: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = TableFormat::Table)]
        format: TableFormat,
    },
    /// Copy an ext2/3/4 root image into the templates folder and give the
    /// copy MLN's guest-configuration step (the image itself is left as it
    /// is).
    Import {
        /// The image.
        image: PathBuf,
        /// The template's name (default: the image's file name).
        name: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = TableFormat::Table)]
        format: TableFormat,
    },
    /// Add a template MLN built or imported elsewhere (an image carrying
    /// MLN's guest step) to the templates folder unchanged: a symbolic
    /// link to it, or a copy with --copy.
    Register {
        /// The image.
        image: PathBuf,
        /// The template's name (default: the image's file name).
        name: Option<String>,
        /// Copy the image (sparse) instead of linking to it.
        #[arg(long)]
        copy: bool,
    },
    /// The templates in the templates folder, with sizes and SHA-256.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t = TableFormat::Table)]
        format: TableFormat,
    },
}

/// `mln config`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = TableFormat::Table)]
    pub format: TableFormat,
    /// Folder of project states.
    #[arg(long, env = "MLN_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

/// `mln kernel`.
#[derive(Debug, Args)]
pub struct KernelArgs {
    #[command(subcommand)]
    pub action: KernelAction,
    /// Folder of project states; kernels are kept in its `kernels` folder.
    #[arg(long, env = "MLN_STATE_DIR", global = true)]
    pub state_dir: Option<PathBuf>,
}

/// What `mln kernel` does.
#[derive(Debug, Subcommand)]
pub enum KernelAction {
    /// Which kernel UML guests boot with here, and why.
    Show {
        /// Output format.
        #[arg(long, value_enum, default_value_t = TableFormat::Table)]
        format: TableFormat,
    },
    /// Print only the path of the kernel UML guests boot with here.
    Path,
    /// Download Debian's newer user-mode-linux and the C library it needs
    /// (from a newer suite of the archive this host's apt sources use),
    /// make it run here, prove it with a probe boot and record it: from
    /// then on it boots guests wherever the distribution's kernel crashes.
    Fetch {
        /// The suite to take the kernel from.
        #[arg(long, default_value = "unstable")]
        suite: String,
        /// Download again even when a fetched kernel is there.
        #[arg(long)]
        refresh: bool,
        /// Only when the distribution's kernel cannot boot here (a probe
        /// boot, about a second, tells); otherwise do nothing.
        #[arg(long)]
        if_needed: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = TableFormat::Table)]
        format: TableFormat,
    },
    /// Get the Linux kernel QEMU (KVM) guests boot with: Debian's
    /// `linux-image` and an initramfs with the virtio modules, built into
    /// the kernels folder (once; `mln up` of a `kvm` host does the same).
    /// With it there, `mln doctor` can probe whether KVM really runs.
    FetchGuest,
}

/// `mln doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = TableFormat::Table)]
    pub format: TableFormat,
    /// Check this UML kernel instead of the one guests would boot with.
    #[arg(long)]
    pub uml_kernel: Option<PathBuf>,
    /// Folder of project states (for the kernels fetched there).
    #[arg(long, env = "MLN_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

/// `mln agent`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Folder of this server's project files (default: as for the other
    /// verbs).
    #[arg(long, env = "MLN_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Instead of serving requests, one job for a managing mln.
    #[command(subcommand)]
    pub job: Option<AgentJob>,
}

/// What `mln agent` does besides serving requests.
#[derive(Debug, Subcommand)]
pub enum AgentJob {
    /// Plug stdin/stdout into this server's instance of a project switch
    /// (`vde_plug`): one end of a cable joining a switch across servers.
    Plug {
        /// The project.
        project: String,
        /// The switch.
        switch: String,
    },
    /// Write a stopped host's disks to stdout as a checksummed stream;
    /// stdin's first line names the project and host (JSON).
    ExportDisks,
    /// Read such a stream from stdin after that line and make it the
    /// host's disks here, rebased onto this server's template.
    ImportDisks,
    /// Send a running Xen guest to stdout as libxl's migration stream;
    /// stdin's first line names the project and host (JSON).
    MigrateSend,
    /// Restore a guest from such a stream on stdin after that line (which
    /// also carries the domain spec) and run it here.
    MigrateReceive,
    /// Attach stdin/stdout to a guest's console here (for a managing
    /// `mln console`, over `ssh -t`).
    Console {
        /// The project.
        project: String,
        /// The guest's platform (uml, xen, hvm, kvm).
        platform: String,
        /// The host.
        host: String,
    },
}

/// Which backend runs the hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendChoice {
    /// User-Mode Linux.
    Uml,
    /// Xen (paravirtualised; `hvm` hosts stay fully virtualised).
    Xen,
    /// QEMU: KVM where it really runs guests, else QEMU's TCG.
    Kvm,
}

/// Options of the lifecycle verbs.
#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
pub struct LifecycleArgs {
    /// The project file.
    #[arg(conflicts_with = "project")]
    pub file: Option<PathBuf>,
    /// The project file (MLN's `-f FILE`).
    #[arg(short = 'f', long = "file", id = "file_flag", conflicts_with_all = ["file", "project"])]
    file_flag: Option<PathBuf>,
    /// Define a global variable, `-D NAME=VALUE` (repeatable): it wins
    /// over the file's own global `$NAME`.
    #[arg(short = 'D', long = "define", value_name = "NAME=VALUE")]
    pub defines: Vec<String>,
    /// Run the project file as the project NAME (a second copy of a lab,
    /// say); its hosts and switches are that project's own.
    #[arg(long = "name", value_name = "NAME", conflicts_with = "project")]
    pub name: Option<String>,
    /// Definitions after `-D`'s (a class copy's name and variables).
    #[arg(skip)]
    pub extra: mln_lang::Definitions,
    /// Root's login on every host (a class copy's student's).
    #[arg(skip)]
    pub login: Option<mln_lang::class::Login>,
    /// A project already built, by name (MLN's `-p NAME`).
    #[arg(short = 'p', long)]
    pub project: Option<String>,
    /// Only these hosts (MLN's `-h HOST`; repeatable).
    #[arg(short = 'h', long = "host")]
    pub hosts: Vec<String>,
    /// Print the plan and change nothing (MLN's `-s`, simulate, too).
    #[arg(short = 'n', long, visible_short_alias = 's')]
    pub dry_run: bool,
    /// Every recorded project (MLN's `start -a`, `stop -a`).
    #[arg(short = 'a', long, conflicts_with_all = ["file", "file_flag", "project"])]
    pub all: bool,
    /// Go on without asking (MLN's `-r`: `upgrade` then needs no `--yes`).
    #[arg(short = 'r')]
    pub no_questions: bool,
    /// Restart what a change needs restarted (MLN's `upgrade -S`; `mln`
    /// always does).
    #[arg(short = 'S', hide = true)]
    pub restart_upgraded: bool,
    /// Print only errors and the outcome (MLN's `-q`).
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Print the plan before applying it.
    #[arg(long = "show-plan")]
    pub verbose_plan: bool,
    /// Run every host on this backend instead of the platform the project
    /// names. Without it, each host runs on its own platform when this
    /// machine can run it (User-Mode Linux anywhere, Xen on a Xen dom0),
    /// and a project asking for one it cannot run is refused.
    #[arg(long, value_enum)]
    pub backend: Option<BackendChoice>,
    /// Wait for another `mln` working on the project instead of failing.
    #[arg(long)]
    pub wait: bool,
    /// Stop guests at once, without waiting for a clean shutdown (their
    /// `shutdown` lines do not run; as pulling the plug; MLN's `stop -H`).
    #[arg(long, short = 'H')]
    pub force: bool,
    /// Actions run at once on each server, this machine being one
    /// (default: twice its cores, 2 to 16); a project over 25 servers runs
    /// up to 25 times as many in all.
    #[arg(short = 'j', long)]
    pub jobs: Option<usize>,
    /// How the outcome is said on stdout: a line for people, or one JSON
    /// object for scripts (`mln plan`: the plan as a diff or as JSON).
    #[arg(long, value_enum, default_value_t = OutcomeFormat::Text)]
    pub format: OutcomeFormat,
    #[command(flatten)]
    pub run: RunSettings,
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
}

/// How a lifecycle verb says its outcome (`--format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutcomeFormat {
    /// `PROJECT: VERB (N action(s) done)`; for `mln plan`, its diff.
    #[value(alias = "diff")]
    Text,
    /// One JSON object: project, verb, ok, done, failed, not_run (for
    /// `mln plan`, the plan).
    Json,
}

/// Where a verb that runs guests finds things, and its time limits.
#[derive(Debug, Clone, Args)]
pub struct RunSettings {
    /// Folder of project states (default: $XDG_STATE_HOME/mln, /var/lib/mln for root).
    #[arg(long, env = "MLN_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Folder of templates (default: STATE_DIR/templates).
    #[arg(long)]
    pub template_dir: Option<PathBuf>,
    /// The UML kernel for hosts without a `kernel` of their own (default:
    /// MLN_UML_KERNEL, else a kernel `mln kernel fetch` got where the
    /// distribution's crashes, else /usr/bin/linux.uml).
    #[arg(long, value_name = "PATH")]
    pub uml_kernel: Option<PathBuf>,
    /// Seconds a started guest may take to confirm its boot.
    #[arg(long, value_name = "SECS", default_value_t = 180)]
    pub boot_timeout: u64,
    /// Seconds a hook block may run before it is killed and fails its
    /// action.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    pub hook_timeout: u64,
    #[command(flatten)]
    pub plugins: PluginArgs,
}

impl LifecycleArgs {
    /// The same options for the recorded project `name` (for `-a`).
    pub fn for_project(&self, name: &str) -> LifecycleArgs {
        LifecycleArgs {
            file: None,
            file_flag: None,
            defines: Vec::new(),
            name: None,
            extra: mln_lang::Definitions::new(),
            login: None,
            project: Some(name.to_string()),
            hosts: self.hosts.clone(),
            dry_run: self.dry_run,
            all: false,
            no_questions: self.no_questions,
            restart_upgraded: self.restart_upgraded,
            quiet: self.quiet,
            verbose_plan: self.verbose_plan,
            backend: self.backend,
            wait: self.wait,
            force: self.force,
            jobs: self.jobs,
            format: self.format,
            run: self.run.clone(),
            help: None,
        }
    }

    /// Fold `-f FILE` into the positional file.
    pub fn normalized(mut self) -> Self {
        if self.file.is_none() {
            self.file = self.file_flag.take();
        }
        self
    }
}

/// Which plugin programs run (`docs/plugins.md`).
#[derive(Debug, Clone, Args)]
pub struct PluginArgs {
    /// One more folder of plugin programs, over the site's and the user's
    /// (repeatable; also MLN_PLUGINS_DIR).
    #[arg(long = "plugins-dir", value_name = "DIR")]
    pub plugins_dir: Vec<PathBuf>,
    /// Run no plugin programs (built-ins a project turns on still work).
    #[arg(long)]
    pub no_plugins: bool,
    /// Seconds a plugin program may run at one point before it is killed
    /// and stops the action.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub plugin_timeout: u64,
}

/// Output format of `mln plan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    /// A readable diff.
    Diff,
    /// The plan as JSON.
    Json,
}

/// `mln plan`: its `--format` is the target's (`text`, also `diff`, or
/// `json`).
#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub target: LifecycleArgs,
}

/// `mln upgrade`.
#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
pub struct UpgradeArgs {
    #[command(flatten)]
    pub target: LifecycleArgs,
    /// Apply without asking (needed when stdin is not a terminal).
    #[arg(short = 'y', long)]
    pub yes: bool,
}

/// `mln evacuate SERVER -p PROJECT`.
#[derive(Debug, Args)]
pub struct EvacuateArgs {
    /// The server to empty.
    pub server: String,
    /// Other places for its hosts besides the project's other servers
    /// (`local`: this machine); repeatable.
    #[arg(long = "to", value_name = "SERVER")]
    pub to: Vec<String>,
    /// Apply without asking (needed when stdin is not a terminal).
    #[arg(short = 'y', long)]
    pub yes: bool,
    #[command(flatten)]
    pub target: LifecycleArgs,
}

/// `mln diff OLD NEW`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The project file as it runs.
    pub old: PathBuf,
    /// The project file as it should become.
    pub new: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = PlanFormat::Diff)]
    pub format: PlanFormat,
}

/// Output format of `mln status` and `mln list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TableFormat {
    /// Columns for people.
    Table,
    /// JSON for scripts.
    Json,
}

/// `mln status`.
#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
pub struct StatusArgs {
    /// Only this project.
    #[arg(short = 'p', long)]
    pub project: Option<String>,
    /// Only these hosts (MLN's `-h HOST`; repeatable).
    #[arg(short = 'h', long = "host")]
    pub hosts: Vec<String>,
    /// Only what is up (MLN's `-u`).
    #[arg(short = 'u', long = "up", conflicts_with = "down_only")]
    pub up_only: bool,
    /// Only what is down (MLN's `-d`).
    #[arg(short = 'd', long = "down")]
    pub down_only: bool,
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = TableFormat::Table)]
    format: TableFormat,
    /// Print JSON (same as `--format json`).
    #[arg(long, conflicts_with = "format")]
    json: bool,
    /// Folder of project states.
    #[arg(long, env = "MLN_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

impl StatusArgs {
    /// The format asked for, `--json` included.
    pub fn format(&self) -> TableFormat {
        if self.json {
            TableFormat::Json
        } else {
            self.format
        }
    }
}

/// `mln list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = TableFormat::Table)]
    pub format: TableFormat,
    /// Folder of project states.
    #[arg(long, env = "MLN_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

/// `mln log -p PROJECT HOST`.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// The project, by name.
    #[arg(short = 'p', long)]
    pub project: String,
    /// The host.
    pub host: String,
    /// Keep printing what the console writes, until interrupted or the
    /// log goes away.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Folder of project states.
    #[arg(long, env = "MLN_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

/// Output format of `mln graph`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    /// Graphviz DOT (`dot -Tsvg`).
    Dot,
    /// A Mermaid flowchart.
    Mermaid,
}

/// `mln graph FILE`.
#[derive(Debug, Args)]
pub struct GraphArgs {
    /// Project file.
    pub file: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
    pub format: GraphFormat,
}

/// Output format of diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiagFormat {
    /// rustc-style text on stderr.
    Human,
    /// One JSON array of diagnostics on stdout.
    Json,
}

/// `mln check-persistent`.
#[derive(Debug, Args)]
pub struct CheckPersistentArgs {
    /// Write the systemd unit that runs this at boot, and say how to
    /// enable it.
    #[arg(long)]
    pub install: bool,
    /// Where `--install` writes the unit (default /etc/systemd/system).
    #[arg(long, value_name = "DIR", requires = "install")]
    pub unit_dir: Option<PathBuf>,
    /// Folder of project states.
    #[arg(long, env = "MLN_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

/// `mln reset PROJECT [HOST...]`.
#[derive(Debug, Args)]
pub struct ResetArgs {
    /// The project, by name.
    pub project: String,
    /// Only these hosts (default: every host).
    pub hosts: Vec<String>,
    /// Print what would be done; do nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Wait for another `mln` working on the project.
    #[arg(long)]
    pub wait: bool,
    /// How the outcome is said: a line, or one JSON object.
    #[arg(long, value_enum, default_value_t = OutcomeFormat::Text)]
    pub format: OutcomeFormat,
    #[command(flatten)]
    pub run: RunSettings,
}

/// What `mln class` does to every copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClassVerb {
    /// Prepare every copy; start nothing.
    Build,
    /// Build what is missing and start every copy.
    #[value(alias = "start")]
    Up,
    /// Stop every copy's hosts.
    #[value(alias = "stop")]
    Down,
    /// Each copy's hosts: how many are up.
    Status,
    /// Stop and delete every copy.
    Remove,
}

/// `mln class VERB FILE --roster CSV`.
#[derive(Debug, Args)]
pub struct ClassArgs {
    /// What to do to every copy.
    #[arg(value_enum)]
    pub verb: ClassVerb,
    /// The project file every copy is made from.
    pub file: PathBuf,
    /// The class: a CSV file with a `student` column (and optionally
    /// `ssh_key` and columns that become variables of each copy).
    #[arg(long, value_name = "CSV")]
    pub roster: PathBuf,
    /// The students' generated root passwords, kept readable by you only
    /// (default: beside the roster, `ROSTER-logins.csv`).
    #[arg(long, value_name = "FILE")]
    pub logins: Option<PathBuf>,
    /// Keep every copy root's. By default, run by root, each copy belongs
    /// to the Unix user named like its student (who must exist): its
    /// guests run as them and only they (and root) can reach them.
    #[arg(long)]
    pub no_owners: bool,
    /// How many copies are worked on at once (default: twice this
    /// machine's cores; each copy also starts its hosts side by side).
    #[arg(long, value_name = "N")]
    pub parallel: Option<usize>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = TableFormat::Table)]
    pub format: TableFormat,
    /// With `up`: give every student a port of this machine leading to
    /// port 22 of their copy's `--forward-host`, PORT for the roster's
    /// first student, PORT+1 for the second, ... (`mln forward
    /// --background`; `class stop` and `remove` end them).
    #[arg(long, value_name = "PORT", requires = "forward_host")]
    pub forward_from: Option<u16>,
    /// The host of each copy the forwarded ports lead to.
    #[arg(long, value_name = "HOST", requires = "forward_from")]
    pub forward_host: Option<String>,
    /// The address of this machine the forwarded ports listen on.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0")]
    pub forward_listen: std::net::IpAddr,
    #[command(flatten)]
    pub copy: CopyOptions,
}

/// The options `mln class` passes on to each copy's verb.
#[derive(Debug, Args)]
pub struct CopyOptions {
    /// Define a global variable in every copy, `-D NAME=VALUE`
    /// (repeatable); a roster column of that name wins.
    #[arg(short = 'D', long = "define", value_name = "NAME=VALUE")]
    pub defines: Vec<String>,
    /// Run every host on this backend.
    #[arg(long, value_enum)]
    pub backend: Option<BackendChoice>,
    /// Actions run at once within one copy.
    #[arg(short = 'j', long)]
    pub jobs: Option<usize>,
    #[command(flatten)]
    pub run: RunSettings,
}

impl ResetArgs {
    /// The lifecycle options of the project's run.
    pub fn lifecycle(&self) -> LifecycleArgs {
        let copy = CopyOptions {
            defines: Vec::new(),
            backend: None,
            jobs: None,
            run: self.run.clone(),
        };
        let mut args = copy.lifecycle(None, Some(&self.project), mln_lang::Definitions::new());
        args.hosts.clone_from(&self.hosts);
        args.dry_run = self.dry_run;
        args.wait = self.wait;
        args.quiet = false;
        args
    }
}

impl CopyOptions {
    /// The lifecycle options of one copy: from `file` with `extra` (the
    /// student's definitions), or recorded by name when `file` is `None`.
    pub fn lifecycle(
        &self,
        file: Option<&std::path::Path>,
        project: Option<&str>,
        extra: mln_lang::Definitions,
    ) -> LifecycleArgs {
        LifecycleArgs {
            file: file.map(PathBuf::from),
            file_flag: None,
            defines: self.defines.clone(),
            name: None,
            extra,
            login: None,
            project: project.map(str::to_string),
            hosts: Vec::new(),
            dry_run: false,
            all: false,
            no_questions: true,
            restart_upgraded: false,
            quiet: true,
            verbose_plan: false,
            backend: self.backend,
            wait: false,
            force: false,
            jobs: self.jobs,
            format: OutcomeFormat::Text,
            run: self.run.clone(),
            help: None,
        }
    }
}

/// `mln check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Project files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Define a global variable, `-D NAME=VALUE` (repeatable): it wins
    /// over the file's own global `$NAME`.
    #[arg(short = 'D', long = "define", value_name = "NAME=VALUE")]
    pub defines: Vec<String>,
    /// How to print diagnostics.
    #[arg(long, value_enum, default_value_t = DiagFormat::Human)]
    pub format: DiagFormat,
    #[command(flatten)]
    pub plugins: PluginArgs,
}

/// Output format of `mln show`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ShowFormat {
    /// The resolved model as JSON.
    Json,
    /// Canonical MLN text that parses back to the same model.
    Mln,
}

/// `mln show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Project file.
    pub file: PathBuf,
    /// Define a global variable, `-D NAME=VALUE` (repeatable): it wins
    /// over the file's own global `$NAME`.
    #[arg(short = 'D', long = "define", value_name = "NAME=VALUE")]
    pub defines: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ShowFormat::Json)]
    pub format: ShowFormat,
}

/// `mln parse -f FILE [-S PATH | -A PATH | -H PATH]`; with no path, the
/// project as written, as MLN's tree.
#[derive(Debug, Args)]
pub struct ParseArgs {
    /// Project file (`-` reads standard input).
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
    /// Print one scalar, e.g. `/host/NAME/memory` (`1` for a block that is
    /// there, an empty line for a key nobody set).
    #[arg(short = 'S', conflicts_with_all = ["list", "tree"])]
    pub scalar: Option<String>,
    /// Print a list block one item per line, e.g. `/host/NAME/startup`.
    #[arg(short = 'A', conflicts_with = "tree")]
    pub list: Option<String>,
    /// Print the tree at a path with superclasses applied, e.g. `/host`
    /// (every host) or `/switch/NAME`.
    #[arg(short = 'H')]
    pub tree: Option<String>,
}
