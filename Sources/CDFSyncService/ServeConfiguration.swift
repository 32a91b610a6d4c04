import CDFSyncClient
import CDFSyncCore
import CDFSyncEngine
import Foundation
import Logging

/// How `cdfsync serve` runs: where it listens, which pipelines it runs, and who may call it.
public struct ServeConfiguration: Sendable {
    /// The address to listen on; anything but a loopback address needs ``apiToken``.
    public var host = "127.0.0.1"
    /// The port (0: any free one, for tests; ``CDFSyncServer/onListening`` says which).
    public var port = 8480
    /// The directory of pipeline files (`*.yaml`, `*.yml`), read again when a file changes.
    public var pipelinesDirectory: String
    /// The config directory of saved connections (`--config-dir`; see `ConfigDirectory`).
    public var configDirectory: String = ConfigDirectory.resolve(nil, environment: ProcessInfo.processInfo.environment)
    /// The state directory of pipelines without a `state_dir`.
    public var stateDirectory = ".cdfsync/state"
    /// `--max-store-size` in bytes.
    public var maxStoreBytes = 1 << 36
    /// The bearer token every API call and the console need (`--token-env`); nil: none (loopback only).
    public var apiToken: Secret?
    /// Seconds a due run waits before trying again when another process holds its state directory.
    public var busyRetry: Double = 30
    /// Run every scheduled pipeline at start (`--now`) instead of at its next boundary.
    public var runAtStart = false
    /// Rows per LMDB transaction (nil: the engine's default).
    public var batchSize: Int?
    /// How a pipeline without a saved connection reaches its warehouse: inline settings with secrets from the
    /// environment, else the environment's `DATABRICKS_*`; given by the `cdfsync` command, which owns those rules. (A
    /// pipeline whose `connection:` names a saved connection uses it from ``configDirectory``.)
    public var connectionSettings: @Sendable (Pipeline) throws -> ConnectionSettings
    /// Where the service logs (runs started and ended, failures, warnings; never a secret).
    public var logger = Logger(label: "cdfsync.serve")

    public init(
        pipelinesDirectory: String, connectionSettings: @escaping @Sendable (Pipeline) throws -> ConnectionSettings
    ) {
        self.pipelinesDirectory = pipelinesDirectory
        self.connectionSettings = connectionSettings
    }

    /// Whether `host` names this machine's loopback interface only (127.0.0.0/8, ::1, localhost).
    public static func isLoopback(_ host: String) -> Bool {
        let h = host.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        if h == "localhost" || h == "::1" { return true }
        let parts = h.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "127" else { return false }
        return parts.allSatisfy { p in UInt8(p) != nil }
    }

    /// Refuses a configuration that would expose the service: a non-loopback address without a token, a token too
    /// short to resist guessing, an unusable directory.
    public func validate() throws {
        if !Self.isLoopback(host) && apiToken == nil {
            throw SyncError("--host \(host) is not a loopback address, and no API token is set",
                remedy: "Listening beyond this machine needs a bearer token: put one (at least 16 characters, e.g. "
                    + "`openssl rand -hex 32`) in an environment variable and pass --token-env VAR.")
        }
        if let apiToken, apiToken.reveal().utf8.count < 16 {
            throw SyncError("the API token is shorter than 16 characters",
                remedy: "Use a long random token, e.g. `openssl rand -hex 32`.")
        }
        guard (0...65_535).contains(port) else {
            throw SyncError("--port \(port) is not a TCP port", remedy: "Give a port between 1 and 65535.")
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: pipelinesDirectory, isDirectory: &isDirectory),
            isDirectory.boolValue
        else {
            throw SyncError("--pipelines \(FilePaths.shown(pipelinesDirectory)) is not a directory",
                remedy: "Give the directory that holds the pipeline files (*.yaml).")
        }
        guard busyRetry > 0, busyRetry.isFinite else {
            throw SyncError("--busy-retry must be a positive number of seconds", remedy: "e.g. --busy-retry 30")
        }
    }
}
