import ArgumentParser
import CDFSyncClient
import CDFSyncCore
import CDFSyncEngine
import Foundation

/// Connection settings for a pipeline: inline settings (secrets from environment variables), else the
/// command-line / environment connection options.
func connectionSettings(for pipeline: Pipeline, fallback: ConnectionOptions) throws -> ConnectionSettings {
    let ref = pipeline.connection
    let env = ProcessInfo.processInfo.environment
    var options = fallback
    if let name = ref.name {
        options.connection = name
        return try options.settings()
    }
    if let host = ref.host { options.host = host }
    if let id = ref.warehouseID { options.warehouseId = id }
    if let path = ref.httpPath { options.httpPath = path }
    if let tokenEnv = ref.tokenEnv { options.tokenEnv = tokenEnv }
    if let idEnv = ref.clientIDEnv, let secretEnv = ref.clientSecretEnv {
        guard let id = env[idEnv], let secret = env[secretEnv] else {
            throw SyncError("connection: environment variables \(idEnv) / \(secretEnv) are not set",
                remedy: "Export the service principal's client id and secret under those names.")
        }
        var settings = try options.settings()
        settings.authentication = .oauthM2M(clientID: id, clientSecret: Secret(secret))
        return settings
    }
    return try options.settings()
}

/// The state directory of a pipeline: its `state_dir`, else the command's.
func stateDirectory(_ pipeline: Pipeline?, _ state: StateOptions) -> String {
    pipeline?.stateDir ?? state.stateDir
}
