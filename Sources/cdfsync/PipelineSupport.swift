import ArgumentParser
import CDFSyncClient
import CDFSyncCore
import CDFSyncEngine
import CDFSyncStorage
import Foundation

/// Connection settings for a pipeline: inline settings (secrets from environment variables), else the
/// command-line / environment connection options.
func connectionSettings(for pipeline: Pipeline, fallback: ConnectionOptions) throws -> ConnectionSettings {
    let ref = pipeline.connection
    let env = ProcessInfo.processInfo.environment
    var options = fallback
    if let name = ref.name {
        options.connection = name
        do {
            return try options.settings()
        } catch var removed as ConnectionRemoved {
            removed.pipeline = pipeline.name
            throw removed
        }
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
        return try options.settings(authentication: .oauthM2M(clientID: id, clientSecret: Secret(secret)))
    }
    return try options.settings()
}

/// The state directory of a pipeline: its `state_dir`, else the command's.
func stateDirectory(_ pipeline: Pipeline?, _ state: StateOptions) -> String {
    pipeline?.stateDir ?? state.stateDir
}

/// A reporting command's optional `<pipeline>` argument: a pipeline's name, or its YAML file, whose name and state
/// directory are then used. Without the argument: no name (every pipeline) in the command's state directory.
func pipelineArgument(_ argument: String?, _ state: StateOptions) throws -> (name: String?, stateDir: String) {
    guard let argument, argument.hasSuffix(".yaml") || argument.hasSuffix(".yml") else {
        return (argument, state.stateDir)
    }
    let spec = try PipelineLoader.load(path: argument)
    return (spec.name, stateDirectory(spec, state))
}

/// Warnings about directories that already exist with more access than cdfsync gives the ones it creates: the
/// state directory (0700) and each delivery directory (0700, or what its pipeline's `file_mode` allows). Reported
/// by `status` and `pipeline validate`; not errors — someone may have opened them on purpose.
func directoryWarnings(stateDirectory: String, deliveryDirectories: [(directory: String, fileMode: mode_t)])
    -> [String]
{
    var out: [String] = []
    let state = PrivateFiles.wideDirectoryWarning(stateDirectory, allowed: PrivateFiles.directoryMode,
        what: "state directory")
    if let state { out.append(state) }
    for d in deliveryDirectories {
        let allowed = PrivateFiles.directoryMode(forFileMode: d.fileMode)
        if let w = PrivateFiles.wideDirectoryWarning(d.directory, allowed: allowed, what: "output directory") {
            out.append(w)
        }
    }
    return out
}

/// A statement client for `settings` that Ctrl-C (SIGINT) or SIGTERM cancels: the running statement is cancelled on
/// the warehouse and the command ends with the interrupted exit status.
func interruptibleClient(_ settings: ConnectionSettings) -> StatementClient {
    let client = StatementClient(settings: settings)
    Interrupts.install()
    client.isCancelled = { Interrupts.requested }
    return client
}
