import CDFSyncClient
import CDFSyncCore
import CDFSyncEngine
import CDFSyncStorage
import CDFSyncTestSupport
import Foundation
import WarehouseSimulator

/// Runs one sync of the demo participants table.
func runSync(_ sim: RunningSimulator, state: String, output: String, batchSize: Int = 50_000,
             table: String = "main.research.participants", token: String = "dapi-demo-token") throws -> SyncSummary {
    let store = try PanelStore(directory: state)
    let client = StatementClient(settings: try sim.settings(token: token))
    client.retryPolicy.baseDelay = 0.01
    var options = SyncOptions(table: try QualifiedName(parsing: table), keyColumn: "participant_id", outputDirectory: output)
    options.batchSize = batchSize
    return try CDFSync(client: client, store: store, options: options).run()
}

/// The panel as external id → record object.
func panelContents(_ state: String) throws -> [String: [String: String?]] {
    let store = try PanelStore(directory: state)
    var out: [String: [String: String?]] = [:]
    try store.forEachRecord(scope: nil) { r in
        let obj = try JSONSerialization.jsonObject(with: Data(r.record)) as! [String: Any]
        out[r.externalID] = obj.mapValues { $0 as? String }
    }
    return out
}

/// What the panel must hold: per key, the latest post-image over every commit of the table in the documents
/// (inserts and update "after" rows, in version order; deletes leave the last values in place).
func expectedPanel(workspace: String, extraCommits: [String] = [], table: String = "main.research.participants")
    throws -> [String: [String: String?]]
{
    let ws = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: workspace))) as! [String: Any]
    let t = (ws["tables"] as! [[String: Any]]).first { $0["name"] as? String == table }!
    let columns = (t["columns"] as! [[String: Any]]).map { $0["name"] as! String }
    var commits = t["commits"] as! [[String: Any]]
    for path in extraCommits {
        let doc = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
        commits += doc["commits"] as! [[String: Any]]
    }
    commits.sort { ($0["version"] as! Int) < ($1["version"] as! Int) }
    let key = columns.firstIndex(of: "participant_id")!
    var panel: [String: [String: String?]] = [:]
    func put(_ row: [Any]) {
        var rec: [String: String?] = [:]
        for (i, c) in columns.enumerated() { rec[c] = row[i] as? String }
        panel[row[key] as! String] = rec
    }
    for c in commits {
        for row in c["insert"] as? [[Any]] ?? [] { put(row) }
        for u in c["update"] as? [[String: Any]] ?? [] { put(u["after"] as! [Any]) }
    }
    return panel
}

/// Every NDJSON line of the delivered segments, in file order.
func deliveredLines(_ output: String) throws -> [[String: Any]] {
    let files = try FileManager.default.contentsOfDirectory(atPath: output).filter { $0.hasSuffix(".ndjson.zst") }.sorted()
    var lines: [[String: Any]] = []
    for f in files {
        let data = try Zstd.decompress(Array(Data(contentsOf: URL(fileURLWithPath: output + "/" + f))))
        for line in data.split(separator: UInt8(ascii: "\n")) where !line.isEmpty {
            lines.append(try JSONSerialization.jsonObject(with: Data(line)) as! [String: Any])
        }
    }
    return lines
}

/// Runs the built `cdfsync` binary as its own process against the simulator on `port`, with the state and
/// output directories in `dir`; returns its exit status and everything it printed (stdout and stderr).
func runCLI(_ args: [String], port: Int, dir: TempDir) throws -> (status: Int32, output: String) {
    try runProcess(
        try BuiltProduct.cdfsync.path,
        args + ["--host", "http://127.0.0.1:\(port)", "--warehouse-id", "8a1c2f3d4e5b6a70",
                "--state-dir", dir.sub("state"), "--output-dir", dir.sub("out")],
        environment: ["DATABRICKS_TOKEN": "dapi-demo-token", "PATH": "/usr/bin:/bin"])
}

/// Runs `executable` to its end; returns its exit status and everything it printed (stdout and stderr).
func runProcess(_ executable: String, _ arguments: [String], environment: [String: String]? = nil) throws
    -> (status: Int32, output: String)
{
    let r = try ChildProcess.run(executable, arguments, environment: environment)
    return (r.status, r.output)
}
