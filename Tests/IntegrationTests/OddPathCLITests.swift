import CDFSyncTestSupport
import Foundation
import Testing

/// Every command that takes a path, given odd ones — one character (`--state-dir s` trapped with signal 4 in
/// Foundation's `deletingLastPathComponent`), a trailing slash, `.`, `..`, relative, unicode, longer than the
/// kernel takes — ends normally: exit 0, or 1 / 64 with a one-line error; never a signal.
@Suite("CLI: odd paths never crash")
struct OddPathCLITests {
    /// Relative to a fresh working directory inside a fresh temporary directory (`..` stays inside it).
    static let paths: [String] = [
        "s", "s/", ".", "..", "./a/../b", "é/ü", "a//b//",
        String(repeating: "x", count: 300),  // one name longer than 255 bytes
        Array(repeating: String(repeating: "d", count: 200), count: 25).joined(separator: "/"),  // > PATH_MAX
        "notes.txt/x",  // through a file
    ]

    /// `{P}`: the odd path; `{F}`: a valid pipeline file; `{S}`: a state directory a sync has written.
    static let commands: [[String]] = [
        ["sync", "--table", "main.research.participants", "--state-dir", "{P}"],
        ["sync", "--table", "main.research.participants", "--state-dir", "{S}", "--output-dir", "{P}"],
        ["sync", "{F}", "--state-dir", "{P}"],
        ["sync", "{P}"],
        ["sync", "--table", "main.research.participants", "--state-dir", "{S}", "--summary-json", "{P}"],
        ["replay", "--table", "main.research.participants", "--from-version", "1", "--state-dir", "{P}"],
        ["replay", "--table", "main.research.participants", "--from-version", "1", "--state-dir", "{S}",
         "--redeliver", "--output-dir", "{P}"],
        ["schedule", "--once", "{P}"],
        ["schedule", "--once", "{F}", "--state-dir", "{P}"],
        ["pipeline", "validate", "{P}"],
        ["pipeline", "validate", "{F}", "--state-dir", "{P}"],
        ["pipeline", "preview", "{P}"],
        ["status", "--state-dir", "{P}"],
        ["runs", "--state-dir", "{P}"],
        ["runs", "{P}"],
        ["runs", "show", "1", "--state-dir", "{P}"],
        ["panel", "export", "--state-dir", "{P}"],
        ["connection", "list", "--config-dir", "{P}"],
        ["connection", "add", "c", "--host", "http://127.0.0.1:9", "--warehouse-id", "8a1c2f3d4e5b6a70",
         "--token-env", "T", "--config-dir", "{P}"],
        ["connection", "add", "c", "--host", "http://127.0.0.1:9", "--warehouse-id", "8a1c2f3d4e5b6a70",
         "--token-env", "T", "--ca-bundle", "{P}", "--config-dir", "{S}-config"],
        ["connection", "remove", "c", "--config-dir", "{P}"],
        ["discover", "--config-dir", "{P}", "--connection", "c"],
        ["discover", "--ca-bundle", "{P}"],
    ]

    @Test(arguments: commands)
    func aCommandGivenOddPathsEndsWithoutASignal(template: [String]) throws {
        let sim = try RunningSimulator()
        for path in Self.paths {
            let dir = TempDir()
            let work = dir.sub("work")
            try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
            try "not a directory\n".write(toFile: work + "/notes.txt", atomically: true, encoding: .utf8)
            let pipeline = work + "/p.yaml"
            try """
                name: odd
                connection: {warehouse_id: 8a1c2f3d4e5b6a70}
                source: main.research.participants
                mapping: {external_id: participant_id, email: email}
                schedule: 15m
                """.write(toFile: pipeline, atomically: true, encoding: .utf8)
            let state = dir.sub("state")
            let args = template.map {
                $0.replacingOccurrences(of: "{P}", with: path).replacingOccurrences(of: "{F}", with: pipeline)
                    .replacingOccurrences(of: "{S}", with: state)
            }
            let env = ["DATABRICKS_TOKEN": "dapi-demo-token", "DATABRICKS_HOST": sim.baseURL,
                       "DATABRICKS_WAREHOUSE_ID": "8a1c2f3d4e5b6a70", "PATH": "/usr/bin:/bin", "HOME": dir.path]
            let r = try runBinary(args, in: work, environment: env)
            let shown = "\(args.map { $0.count > 40 ? String($0.prefix(40)) + "…" : $0 }) → \(r.output.prefix(600))"
            #expect(r.exited, "ended by signal \(r.status): \(shown)")
            #expect([0, 1, 64].contains(r.status), "\(shown)")
            #expect(!r.output.contains("Backtrac") && !r.output.contains("Fatal error"), "\(shown)")
            if r.status != 0 {
                let errors = r.output.split(separator: "\n").filter { $0.hasPrefix("error:") || $0.hasPrefix("Error:") }
                #expect(errors.count == 1, "one error line: \(shown)")
                #expect((errors.first?.utf8.count ?? 0) < 1000, "a short error line: \(shown)")
            }
        }
    }
}

/// Runs the built `cdfsync` (or `executable`) in `directory`; whether it exited (not killed by a signal), its status
/// (or signal) and everything it printed.
func runBinary(_ arguments: [String], in directory: String, environment: [String: String],
               executable: String? = nil) throws -> (exited: Bool, status: Int32, output: String)
{
    let r = try ChildProcess.run(
        try executable ?? BuiltProduct.cdfsync.path, arguments, environment: environment, directory: directory)
    return (r.exited, r.status, r.output)
}
