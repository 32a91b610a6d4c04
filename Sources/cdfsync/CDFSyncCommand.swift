import ArgumentParser
import CDFSyncClient
import CDFSyncCore
import CDFSyncEngine
import CDFSyncStorage
import Foundation

@main
struct CDFSyncCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cdfsync",
        abstract: "Replicate a Databricks Delta change data feed into a deduplicated participant panel.",
        version: "0.1.0",
        subcommands: [
            Sync.self, Replay.self, Schedule.self, PipelineCommand.self, Runs.self, Panel.self, Connection.self,
            Discover.self,
        ]
    )
}

/// How to reach the warehouse: flags, else the environment variables the Databricks tools use.
struct ConnectionOptions: ParsableArguments {
    @Option(help: "Use a saved connection (see `cdfsync connection list`); other flags override its catalog, schema and CA bundle.")
    var connection: String?

    @Option(help: "Directory of saved connections and the secret key (env CDFSYNC_CONFIG_DIR, default ~/.config/cdfsync).")
    var configDir: String?

    @Option(help: "Workspace URL or host (env DATABRICKS_HOST).")
    var host: String?

    @Option(help: "SQL warehouse id (env DATABRICKS_WAREHOUSE_ID).")
    var warehouseId: String?

    @Option(help: "Warehouse HTTP path, /sql/1.0/warehouses/<id> (env DATABRICKS_HTTP_PATH).")
    var httpPath: String?

    @Option(help: "Name of an environment variable holding the personal access token (default DATABRICKS_TOKEN).")
    var tokenEnv: String = "DATABRICKS_TOKEN"

    @Option(help: "Default catalog for the statements.")
    var catalog: String?

    @Option(help: "Default schema for the statements.")
    var schema: String?

    @Option(help: "PEM file of CA certificates to trust (corporate TLS proxies).")
    var caBundle: String?

    @Option(help: "Seconds to wait for a connection.")
    var connectTimeout: Double = 15

    @Option(help: "Seconds a single HTTP request may take.")
    var requestTimeout: Double = 300

    func settings() throws -> ConnectionSettings {
        let env = ProcessInfo.processInfo.environment
        if let name = connection { return try savedSettings(name) }
        guard let host = host ?? env["DATABRICKS_HOST"] else {
            throw DatabricksError(.configuration, "no workspace host given",
                remedy: "Pass --host or set DATABRICKS_HOST (e.g. https://dbc-1234.cloud.databricks.com).")
        }
        let warehouse: String
        if let id = warehouseId ?? env["DATABRICKS_WAREHOUSE_ID"] {
            warehouse = id
        } else if let path = httpPath ?? env["DATABRICKS_HTTP_PATH"] {
            warehouse = try ConnectionSettings.warehouseID(fromHTTPPath: path)
        } else {
            throw DatabricksError(.configuration, "no SQL warehouse given",
                remedy: "Pass --warehouse-id <id> or --http-path /sql/1.0/warehouses/<id>.")
        }
        let auth: Authentication
        if let clientID = env["DATABRICKS_CLIENT_ID"], let secret = env["DATABRICKS_CLIENT_SECRET"], env[tokenEnv] == nil {
            auth = .oauthM2M(clientID: clientID, clientSecret: Secret(secret))
        } else if let token = env[tokenEnv], !token.isEmpty {
            auth = .personalAccessToken(Secret(token))
        } else {
            throw DatabricksError(.configuration, "no credential found",
                remedy: "Set \(tokenEnv) to a personal access token, or DATABRICKS_CLIENT_ID and DATABRICKS_CLIENT_SECRET for a service principal.")
        }
        var transport = TransportOptions()
        transport.caBundlePath = caBundle
        transport.connectTimeout = connectTimeout
        transport.requestTimeout = requestTimeout
        return try ConnectionSettings(host: host, warehouseID: warehouse, authentication: auth, catalog: catalog,
            schema: schema, transport: transport)
    }
}

struct StateOptions: ParsableArguments {
    @Option(help: "Directory of the LMDB state (panel, index, checkpoints, runs).")
    var stateDir: String = ".cdfsync/state"
}

/// Runs `body`, printing any error as one clear line on stderr and exiting non-zero.
func reportingErrors<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let e as ValidationError {
        throw e
    } catch let e as SyncFailure {
        FileHandle.standardError.write(Data("error: \(e.underlying)\n".utf8))
        FileHandle.standardError.write(Data("  \(e.summary.failureState) (run \(e.summary.runID) recorded)\n".utf8))
        throw ExitCode(1)
    } catch let e as ExitCode {
        throw e
    } catch {
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        throw ExitCode(1)
    }
}
