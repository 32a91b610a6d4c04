import CDFSyncStorage
import CDFSyncTestSupport
import Foundation
import Testing
import WarehouseSimulator

/// The CLI names its own bad arguments: an option it does not know is called unknown (exit 64), before any check
/// of the other options' values.
@Suite("CLI: unknown options")
struct UnknownOptionCLITests {
    @Test(arguments: [
        (["sync", "--bogus"], "Unknown option '--bogus'"),
        (["sync", "--profil", "sim", "--table", "main.research.participants"], "Unknown option '--profil'"),
        (["sync", "--bogus", "--batch-size", "0"], "Unknown option '--bogus'"),
        (["replay", "--bogus", "--from-version", "1"], "Unknown option '--bogus'"),
        (["schedule", "--bogus", "x.yaml"], "Unknown option '--bogus'"),
        (["pipeline", "preview", "x.yaml", "--limit", "0", "--bogus"], "Unknown option '--bogus'"),
        (["connection", "add", "c", "--host", "h", "--warehouse-id", "w", "--http-path", "p", "--bogus"],
         "Unknown option '--bogus'"),
    ])
    func anUnknownOptionIsNamedAsUnknown(args: [String], message: String) throws {
        let dir = TempDir()
        let r = try runBinary(args, in: dir.path, environment: ["PATH": "/usr/bin:/bin", "HOME": dir.path])
        #expect(r.exited && r.status == 64, "\(r.output)")
        #expect(r.output.contains(message), "\(r.output)")
        #expect(!r.output.contains("give a pipeline file or --table") && !r.output.contains("not both"), "\(r.output)")
    }

    /// The checks of the options' values still run, and still exit 64.
    @Test(arguments: [
        (["sync"], "give a pipeline file or --table"),
        (["sync", "p.yaml", "--table", "main.research.participants"], "give either a pipeline file or --table, not both"),
        (["sync", "--table", "t", "--batch-size", "0"], "--batch-size must be at least 1 row"),
    ])
    func theValueChecksStillRun(args: [String], message: String) throws {
        let dir = TempDir()
        let r = try runBinary(args, in: dir.path, environment: ["PATH": "/usr/bin:/bin", "HOME": dir.path])
        #expect(r.exited && r.status == 64 && r.output.contains(message), "\(r.output)")
    }
}

/// The panel's files are private whatever the umask: the state directory 0700 and its files 0600, the output
/// directory 0700 and the segments, manifest and owner file 0600 — or the sink's `file_mode` for a reader in
/// another group. Wider existing directories are reported by `status` and `pipeline validate`.
@Suite("CLI: private panel files")
struct PrivateFilesCLITests {
    func mode(_ path: String) -> String { PrivateFiles.mode(path).map(PrivateFiles.octal) ?? "missing" }

    /// Runs cdfsync under `umask` (a shell sets it, so this process's umask, shared by every test, is untouched).
    func run(_ args: [String], umask: String, dir: TempDir, sim: RunningSimulator) throws
        -> (exited: Bool, status: Int32, output: String)
    {
        let quoted = args.map { "'\($0)'" }.joined(separator: " ")
        let binary = try BuiltProduct.cdfsync.path
        return try runBinary(["-c", "umask \(umask); exec '\(binary)' \(quoted)"], in: dir.path,
            environment: ["PATH": "/usr/bin:/bin", "HOME": dir.path, "DATABRICKS_TOKEN": "dapi-demo-token",
                          "DATABRICKS_HOST": sim.baseURL, "DATABRICKS_WAREHOUSE_ID": "8a1c2f3d4e5b6a70"],
            executable: "/bin/sh")
    }

    @Test(arguments: ["000", "022", "077"])
    func statePanelAndOutputAreOwnerOnlyWhateverTheUmask(umask: String) throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        let r = try run(["sync", "--table", "main.research.participants", "--state-dir", "deep/state",
                         "--output-dir", "deep/out", "--summary-json", "summary.json"], umask: umask, dir: dir, sim: sim)
        try #require(r.status == 0, "\(r.output)")
        for d in ["deep/state", "deep/out", "deep"] { #expect(mode(dir.sub(d)) == "0700", "\(d) under umask \(umask)") }
        let state = try FileManager.default.contentsOfDirectory(atPath: dir.sub("deep/state"))
        #expect(Set(["data.mdb", "lock.mdb", "writer.lock"]).isSubset(of: state), "\(state)")
        for f in state { #expect(mode(dir.sub("deep/state/\(f)")) == "0600", "\(f) under umask \(umask)") }
        let out = try FileManager.default.contentsOfDirectory(atPath: dir.sub("deep/out"))
        #expect(out.contains("manifest.json") && out.contains(PanelStore.ownerFileName) && out.contains { $0.hasPrefix("changes-") })
        for f in out { #expect(mode(dir.sub("deep/out/\(f)")) == "0600", "\(f) under umask \(umask)") }
        #expect(mode(dir.sub("summary.json")) == "0600")
    }

    @Test func aSinkFileModeOpensTheOutputToItsGroupAndValidateAndStatusWarnAboutWiderDirectories() throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        try """
            name: panel
            connection: {warehouse_id: 8a1c2f3d4e5b6a70}
            source: main.research.participants
            mapping: {external_id: participant_id, email: email}
            sinks: [{type: ndjson, directory: shared/out, file_mode: "0640"}]
            state_dir: state
            """.write(toFile: dir.sub("p.yaml"), atomically: true, encoding: .utf8)
        let r = try run(["sync", "p.yaml"], umask: "077", dir: dir, sim: sim)
        try #require(r.status == 0, "\(r.output)")
        #expect(mode(dir.sub("shared/out")) == "0750" && mode(dir.sub("shared")) == "0750")
        for f in try FileManager.default.contentsOfDirectory(atPath: dir.sub("shared/out")) {
            #expect(mode(dir.sub("shared/out/\(f)")) == "0640", "\(f)")
        }
        #expect(mode(dir.sub("state")) == "0700")
        // Nothing to warn about yet; then someone opens the state directory and the output to everyone.
        let quiet = try run(["status", "--state-dir", "state"], umask: "077", dir: dir, sim: sim)
        #expect(quiet.status == 0 && !quiet.output.contains("warning"), "\(quiet.output)")
        chmod(dir.sub("state"), 0o755)
        chmod(dir.sub("shared/out"), 0o777)
        let status = try run(["status", "--state-dir", "state"], umask: "077", dir: dir, sim: sim)
        #expect(status.status == 0, "a warning, not an error: \(status.output)")
        #expect(status.output.contains("warning: state directory state is mode 0755, wider than 0700"), "\(status.output)")
        #expect(status.output.contains("/shared/out is mode 0777, wider than 0750"), "\(status.output)")
        let json = try run(["status", "--state-dir", "state", "--json"], umask: "077", dir: dir, sim: sim)
        let obj = try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [String: Any]
        #expect((obj?["warnings"] as? [String])?.count == 2, "\(json.output)")
        let validate = try run(["pipeline", "validate", "p.yaml", "--offline"], umask: "077", dir: dir, sim: sim)
        #expect(validate.status == 0, "\(validate.output)")
        #expect(validate.output.contains("! warning: state directory state is mode 0755"), "\(validate.output)")
        #expect(validate.output.contains("! warning: output directory shared/out is mode 0777"), "\(validate.output)")
    }
}

/// `pipeline validate` and `sync` decide the mode with the same function: an explicit `mode: cdf` on a table
/// without change data feed fails both with the remedy (sync took a snapshot and exited 0), and `auto` says what
/// it chose.
@Suite("CLI: one mode decision for validate and sync")
struct ModeDecisionCLITests {
    func env(_ sim: RunningSimulator, _ dir: TempDir) -> [String: String] {
        ["PATH": "/usr/bin:/bin", "HOME": dir.path, "DATABRICKS_TOKEN": "dapi-demo-token", "DATABRICKS_HOST": sim.baseURL]
    }

    @Test func anExplicitCDFModeWithoutChangeDataFailsValidateAndSyncAlike() throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        let file = hostilePipeline("explicit-cdf-without-change-data.yaml")
        let validate = try runBinary(["pipeline", "validate", file, "--state-dir", "state"], in: dir.path, environment: env(sim, dir))
        #expect(validate.status == 1, "\(validate.output)")
        #expect(validate.output.contains("✗ mode: cdf, but change data feed is not enabled on main.research.study_sites"),
            "\(validate.output)")
        let sync = try runBinary(["sync", file, "--state-dir", "state"], in: dir.path, environment: env(sim, dir))
        #expect(sync.status == 1, "\(sync.output)")
        #expect(sync.output.contains("error: mode: cdf, but change data feed is not enabled on main.research.study_sites"),
            "\(sync.output)")
        #expect(sync.output.contains("SET TBLPROPERTIES (delta.enableChangeDataFeed = true)"), "\(sync.output)")
        #expect(sync.output.contains("or use mode: auto or mode: snapshot"), "\(sync.output)")
        #expect(!sync.output.contains("[snapshot]"), "no snapshot in its place: \(sync.output)")
    }

    @Test func autoSaysWhichModeItPickedInValidateAndSync() throws {
        let sim = try RunningSimulator()
        let dir = TempDir()
        let file = dir.sub("sites.yaml")
        try String(contentsOfFile: hostilePipeline("explicit-cdf-without-change-data.yaml"), encoding: .utf8)
            .replacingOccurrences(of: "mode: cdf", with: "mode: auto").write(toFile: file, atomically: true, encoding: .utf8)
        let reason = "auto → watermark (delta.enableChangeDataFeed is not true; a cursor column is mapped)"
        let validate = try runBinary(["pipeline", "validate", file, "--state-dir", "state"], in: dir.path, environment: env(sim, dir))
        #expect(validate.status == 0 && validate.output.contains("✓ mode: \(reason)"), "\(validate.output)")
        let sync = try runBinary(["sync", file, "--state-dir", "state", "--summary-json", "s.json"], in: dir.path,
            environment: env(sim, dir))
        #expect(sync.status == 0 && sync.output.contains("mode           \(reason)"), "\(sync.output)")
        let record = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir.sub("s.json")))) as? [String: Any]
        #expect(record?["mode"] as? String == "watermark" && record?["mode_reason"] as? String == reason)
    }
}
