import ArgumentParser
import CDFSyncClient
import CDFSyncCore
import CDFSyncEngine
import CDFSyncService
import Foundation

extension CDFSyncCommand {
    struct Serve: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run every pipeline of a directory on its schedule, with a JSON API, /metrics and run triggers.",
            discussion: """
                One long-running process (docs/serve.md): each pipeline in --pipelines runs at the boundaries of \
                its schedule, and whenever POST /api/pipelines/{name}/run asks (queued behind a run in progress). \
                Pipeline files are read again when they change. Listens on 127.0.0.1 unless --host says otherwise, \
                which needs --token-env. SIGTERM or SIGINT lets the running run finish its current batch, records \
                it, and exits 0. Pipelines without a saved or inline connection use DATABRICKS_HOST, \
                DATABRICKS_WAREHOUSE_ID (or DATABRICKS_HTTP_PATH) and DATABRICKS_TOKEN.
                """)

        @Option(help: "Directory of pipeline files (*.yaml); each runs on its `schedule`, or when triggered.")
        var pipelines: String

        @Option(help: "Address to listen on (anything but loopback needs --token-env).")
        var host = "127.0.0.1"

        @Option(help: "Port to listen on (0: any free port, printed at start).")
        var port = 8480

        @Option(help: "Name of an environment variable holding the API token every call and the console must present.")
        var tokenEnv: String?

        @Option(help: "Directory of saved connections and the secret key (env CDFSYNC_CONFIG_DIR, default ~/.config/cdfsync).")
        var configDir: String?

        @OptionGroup var state: StateOptions

        @Flag(help: "Run every scheduled pipeline at start, then on its schedule.")
        var now = false

        @Option(help: "Seconds a due run waits before trying again when another cdfsync process holds the state directory.")
        var busyRetry: Double = 30

        func validate() throws {
            guard ArgumentChecks.enabled else { return }
            guard busyRetry > 0, busyRetry.isFinite else {
                throw ValidationError("--busy-retry must be a positive number of seconds, e.g. 30")
            }
            guard (0...65_535).contains(port) else { throw ValidationError("--port must be between 0 and 65535") }
            if !ServeConfiguration.isLoopback(host) && tokenEnv == nil {
                throw ValidationError(
                    "--host \(host) is not a loopback address: give --token-env VAR, the name of an environment "
                        + "variable holding the API token (e.g. `export CDFSYNC_API_TOKEN=$(openssl rand -hex 32)`)")
            }
        }

        func run() throws {
            try reportingErrors {
                var fallback = try ConnectionOptions.parse([])
                fallback.configDir = configDir
                let connection = SendableOptions(fallback)
                var config = ServeConfiguration(pipelinesDirectory: pipelines) { spec in
                    try connectionSettings(for: spec, fallback: connection.value)
                }
                config.host = host
                config.port = port
                config.stateDirectory = state.stateDir
                config.configDirectory = ConfigDirectory.resolve(configDir,
                    environment: ProcessInfo.processInfo.environment)
                config.maxStoreBytes = state.maxStoreSize.bytes
                config.busyRetry = busyRetry
                config.runAtStart = now
                if let tokenEnv {
                    guard let token = ProcessInfo.processInfo.environment[tokenEnv], !token.isEmpty else {
                        throw SyncError("--token-env \(tokenEnv): the environment variable \(tokenEnv) is not set",
                            remedy: "Export the API token under that name, e.g. `export \(tokenEnv)=$(openssl rand -hex 32)`.")
                    }
                    config.apiToken = Secret(token)
                }
                let server = try CDFSyncServer(configuration: config)
                // A parent may have started this process with SIGTERM/SIGINT blocked (the mask is inherited); the
                // service's signal handling must receive them.
                var unblock = sigset_t()
                sigemptyset(&unblock)
                sigaddset(&unblock, SIGINT)
                sigaddset(&unblock, SIGTERM)
                pthread_sigmask(SIG_UNBLOCK, &unblock, nil)
                let finished = ResultLatch<Void>()
                let shown = host
                Task {
                    do {
                        try await server.run { port in
                            print("cdfsync serve: listening on http://\(shown.contains(":") ? "[\(shown)]" : shown):\(port)/")
                            fflush(nil)
                        }
                        finished.succeed()
                    } catch {
                        finished.set(.failure(error))
                    }
                }
                try finished.wait()
            }
        }
    }
}

/// The command line's connection options, handed to the server's threads (read only).
private struct SendableOptions: @unchecked Sendable {
    let value: ConnectionOptions
    init(_ value: ConnectionOptions) { self.value = value }
}
