import CDFSyncClient
import CDFSyncCore
import Foundation
import WarehouseSimulator

/// The warehouse simulator serving a workspace on 127.0.0.1 (any free port), in this process; stopped on deinit.
public final class RunningSimulator: @unchecked Sendable {
    public let sim: Simulator
    public let port: Int
    public var baseURL: String { "http://127.0.0.1:\(port)" }

    /// Serves the workspace file at `workspacePath` (default: the demo workspace).
    public init(
        workspacePath: String = fixturePath("demo-workspace.json"), configuration: Simulator.Configuration = .init()
    ) throws {
        installTestLogging()
        sim = try Simulator(workspace: Workspace.load(path: workspacePath), configuration: configuration)
        port = try sim.start(host: "127.0.0.1", port: 0)
    }

    /// Serves the workspace document `json`.
    public init(workspaceJSON json: String, configuration: Simulator.Configuration = .init()) throws {
        installTestLogging()
        sim = try Simulator(workspace: Workspace.load(data: Data(json.utf8)), configuration: configuration)
        port = try sim.start(host: "127.0.0.1", port: 0)
    }

    deinit { sim.stop() }

    /// Connection settings for this simulator: a personal access token, short connect and request timeouts.
    public func settings(token: String = "dapi-demo-token", warehouse: String = "8a1c2f3d4e5b6a70") throws
        -> ConnectionSettings
    {
        var t = TransportOptions()
        t.requestTimeout = 30
        t.connectTimeout = 5
        return try ConnectionSettings(host: baseURL, warehouseID: warehouse,
            authentication: .personalAccessToken(Secret(token)), transport: t)
    }

    /// Appends every commit of a `{"table":..., "commits":[...]}` document.
    public func appendCommits(from path: String) throws {
        struct NotACommitDocument: Error, CustomStringConvertible {
            let path: String
            var description: String { "\(path) is not a {\"table\": …, \"commits\": […]} document" }
        }
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path)))
        guard let doc = object as? [String: Any], let table = doc["table"] as? String,
            let commits = doc["commits"] as? [Any]
        else { throw NotACommitDocument(path: path) }
        for c in commits {
            try sim.appendCommit(table: table, Commit.decode(JSONSerialization.data(withJSONObject: c)))
        }
    }
}
