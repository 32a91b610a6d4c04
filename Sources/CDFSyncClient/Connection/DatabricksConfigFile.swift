import Foundation

/// `~/.databrickscfg`: the INI file of named profiles the Databricks CLI writes (`databricks configure`) and every
/// Databricks SDK reads.
///
/// ```ini
/// [DEFAULT]
/// host  = https://dbc-1234.cloud.databricks.com
/// token = dapi…
///
/// [research]
/// host          = https://dbc-5678.cloud.databricks.com
/// client_id     = 6f2c…
/// client_secret = dose…
/// warehouse_id  = 8a1c2f3d4e5b6a70
/// ```
///
/// Read as the SDKs read it: `[section]` headers, `key = value` (or `key: value`) lines, whole-line comments
/// starting with `#` or `;`, keys case-insensitive, values trimmed; the `DEFAULT` section is a profile of its own,
/// not merged into the others.
public struct DatabricksConfigFile: Sendable {
    /// Where it was read from, as given.
    public let path: String
    /// Profile name → key (lower case) → value, in the file's order of profiles.
    public private(set) var profiles: [(name: String, values: [String: String])]

    /// The path the SDKs read: `DATABRICKS_CONFIG_FILE` when set, else `~/.databrickscfg` (`HOME`, else the
    /// password database's home directory).
    public static func path(environment: [String: String]) -> String {
        if let file = environment["DATABRICKS_CONFIG_FILE"], !file.isEmpty {
            return file.hasPrefix("~/") ? home(environment) + file.dropFirst(1) : file
        }
        return home(environment) + "/.databrickscfg"
    }

    static func home(_ environment: [String: String]) -> String {
        if let home = environment["HOME"], !home.isEmpty { return home }
        return NSHomeDirectory()
    }

    /// The file at `path`, or nil when there is none.
    /// - Throws: ``DatabricksError`` (`.configuration`) when it exists but cannot be read or parsed.
    public static func load(path: String) throws -> DatabricksConfigFile? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DatabricksError(.configuration, "cannot read the Databricks configuration file \(path)",
                remedy: "Check its permissions (it should be readable by this user only: chmod 600 \(path)).")
        }
        guard data.count <= 1 << 20 else {
            throw DatabricksError(.configuration, "the Databricks configuration file \(path) is larger than 1 MiB",
                remedy: "Point DATABRICKS_CONFIG_FILE at the profiles file the Databricks CLI wrote.")
        }
        return try parse(String(decoding: data, as: UTF8.self), path: path)
    }

    /// Parses the text of a configuration file.
    /// - Throws: ``DatabricksError`` naming the line that is neither a section, a `key = value`, a comment nor blank,
    ///   a key before any section, or a section given twice.
    public static func parse(_ text: String, path: String) throws -> DatabricksConfigFile {
        var file = DatabricksConfigFile(path: path, profiles: [])
        var current: Int?
        var lineNumber = 0
        func problem(_ what: String) -> DatabricksError {
            DatabricksError(.configuration, "\(path), line \(lineNumber): \(what)",
                remedy: "Fix the line; the file holds [profile] sections of `key = value` lines "
                    + "(as `databricks configure` writes them).")
        }
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            var line = Substring(raw)
            if line.hasSuffix("\r") { line = line.dropLast() }
            if lineNumber == 1, line.hasPrefix("\u{FEFF}") { line = line.dropFirst() }
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") || trimmed.hasPrefix(";") { continue }
            if trimmed.hasPrefix("[") {
                guard trimmed.hasSuffix("]"), trimmed.count > 2 else { throw problem("a section header is [name]") }
                let name = trimmed.dropFirst().dropLast().trimmingCharacters(in: .whitespaces)
                guard !name.isEmpty else { throw problem("a section header is [name]") }
                if file.profiles.contains(where: { $0.name == name }) {
                    throw problem("profile [\(name)] is defined twice")
                }
                file.profiles.append((name, [:]))
                current = file.profiles.count - 1
                continue
            }
            guard let separator = trimmed.firstIndex(where: { $0 == "=" || $0 == ":" }) else {
                throw problem("expected `key = value`")
            }
            let key = trimmed[..<separator].trimmingCharacters(in: .whitespaces).lowercased()
            let value = trimmed[trimmed.index(after: separator)...].trimmingCharacters(in: .whitespaces)
            guard !key.isEmpty else { throw problem("expected `key = value`") }
            guard let current else { throw problem("`\(key)` comes before any [profile] section") }
            file.profiles[current].values[key] = value
        }
        return file
    }

    /// The values of profile `name` (nil when the file has no such profile).
    public func profile(_ name: String) -> [String: String]? {
        profiles.first { $0.name == name }?.values
    }

    /// The profile names, in the file's order.
    public var profileNames: [String] { profiles.map(\.name) }
}

/// Connection values layered the way the Databricks SDKs layer them (their "unified authentication"): values given
/// explicitly (cdfsync's flags) win over the environment, which wins over the profile of `~/.databrickscfg`.
///
/// As in the SDKs, the profile file is read only when a profile is named (`--profile`, `DATABRICKS_CONFIG_PROFILE`),
/// or when neither the flags nor the environment give a host or a credential — then its `DEFAULT` profile, if it
/// has one. A named profile that the file does not hold is an error; and a token together with a client id and
/// secret, from whatever layers, is "more than one authorization method" unless `auth_type`
/// (`DATABRICKS_AUTH_TYPE`) picks one.
public struct DatabricksUnifiedConfig: Sendable {
    /// Where a value came from, for messages ("--host", "DATABRICKS_HOST", "profile research in ~/.databrickscfg").
    public enum Source: Sendable, Equatable, CustomStringConvertible {
        case flag(String)
        case environment(String)
        case profile(name: String, file: String)

        public var description: String {
            switch self {
            case .flag(let f): f
            case .environment(let v): v
            case .profile(let name, let file): "profile \(name) in \(file)"
            }
        }
    }

    /// One value and its source.
    public struct Value<T: Sendable>: Sendable {
        public var value: T
        public var source: Source
    }

    /// What the flags give (nil: not given).
    public struct Explicit: Sendable {
        public var profile: String?
        public var host: String?
        public var warehouseID: String?
        public var httpPath: String?
        /// The environment variable the personal access token is read from (`--token-env`; default
        /// `DATABRICKS_TOKEN`).
        public var tokenVariable: String

        public init(profile: String? = nil, host: String? = nil, warehouseID: String? = nil, httpPath: String? = nil,
                    tokenVariable: String = "DATABRICKS_TOKEN") {
            self.profile = profile
            self.host = host
            self.warehouseID = warehouseID
            self.httpPath = httpPath
            self.tokenVariable = tokenVariable
        }
    }

    public var host: Value<String>?
    public var warehouseID: Value<String>?
    public var httpPath: Value<String>?
    public var token: Value<Secret>?
    public var clientID: Value<String>?
    public var clientSecret: Value<Secret>?
    /// `auth_type` / `DATABRICKS_AUTH_TYPE`: `pat` or `oauth-m2m` when both kinds of credential are configured.
    public var authType: Value<String>?
    /// The profile read, and the file it was read from (nil: no profile was read).
    public var profile: (name: String, file: String)?

    /// Layers `explicit` over `environment` over the profile file (``DatabricksConfigFile/path(environment:)``).
    public static func resolve(_ explicit: Explicit, environment: [String: String]) throws -> DatabricksUnifiedConfig {
        var c = DatabricksUnifiedConfig()
        func env(_ name: String) -> Value<String>? {
            environment[name].flatMap { $0.isEmpty ? nil : Value(value: $0, source: .environment(name)) }
        }
        func secret(_ v: Value<String>?) -> Value<Secret>? { v.map { Value(value: Secret($0.value), source: $0.source) } }
        c.host = explicit.host.map { Value(value: $0, source: .flag("--host")) } ?? env("DATABRICKS_HOST")
        c.warehouseID = explicit.warehouseID.map { Value(value: $0, source: .flag("--warehouse-id")) }
            ?? (explicit.httpPath == nil ? env("DATABRICKS_WAREHOUSE_ID") : nil)
        c.httpPath = explicit.httpPath.map { Value(value: $0, source: .flag("--http-path")) }
            ?? (explicit.warehouseID == nil ? env("DATABRICKS_HTTP_PATH") : nil)
        c.token = secret(env(explicit.tokenVariable))
        c.clientID = env("DATABRICKS_CLIENT_ID")
        c.clientSecret = secret(env("DATABRICKS_CLIENT_SECRET"))
        c.authType = env("DATABRICKS_AUTH_TYPE")

        let profileName = explicit.profile.map { Value(value: $0, source: .flag("--profile")) }
            ?? env("DATABRICKS_CONFIG_PROFILE")
        let anyAuth = c.token != nil || c.clientID != nil || c.clientSecret != nil
        // The SDKs skip the file when the caller configured a host or a credential and named no profile.
        if profileName != nil || !(anyAuth || c.host != nil) {
            try c.loadProfile(profileName, environment: environment)
        }
        try c.checkOneAuthMethod()
        return c
    }

    private mutating func loadProfile(_ named: Value<String>?, environment: [String: String]) throws {
        let path = DatabricksConfigFile.path(environment: environment)
        let shown = Self.shown(path, environment: environment)
        guard let file = try DatabricksConfigFile.load(path: path) else {
            guard let named else { return }
            throw DatabricksError(.configuration,
                "profile \(named.value) (\(named.source)) was asked for, but there is no \(shown)",
                remedy: "Create the profile with `databricks configure --profile \(named.value)`, point "
                    + "DATABRICKS_CONFIG_FILE at the file that has it, or drop \(named.source).")
        }
        let name = named?.value ?? "DEFAULT"
        guard let values = file.profile(name) else {
            // No DEFAULT profile and none named: nothing to read, as in the SDKs.
            guard let named else { return }
            let known = file.profileNames
            throw DatabricksError(.configuration, "\(shown) has no \(named.value) profile (\(named.source))",
                remedy: known.isEmpty ? "The file has no profiles; add one with `databricks configure --profile \(named.value)`."
                    : "Its profiles are: \(known.joined(separator: ", ")).")
        }
        let source = Source.profile(name: name, file: shown)
        func take(_ key: String) -> Value<String>? {
            values[key].flatMap { $0.isEmpty ? nil : Value(value: $0, source: source) }
        }
        profile = (name, shown)
        if host == nil { host = take("host") }
        if warehouseID == nil && httpPath == nil {
            warehouseID = take("warehouse_id")
            if warehouseID == nil { httpPath = take("http_path") }
        }
        if token == nil { token = take("token").map { Value(value: Secret($0.value), source: $0.source) } }
        if clientID == nil { clientID = take("client_id") }
        if clientSecret == nil {
            clientSecret = take("client_secret").map { Value(value: Secret($0.value), source: $0.source) }
        }
        if authType == nil { authType = take("auth_type") }
    }

    /// A token and an OAuth client are two ways to authenticate: refused unless `auth_type` picks one.
    private func checkOneAuthMethod() throws {
        if let authType {
            guard ["pat", "oauth-m2m"].contains(authType.value) else {
                throw DatabricksError(.configuration,
                    "auth_type \(authType.value) (\(authType.source)) is not one cdfsync supports",
                    remedy: "Use auth_type pat (a personal access token) or oauth-m2m (a service principal's "
                        + "client id and secret).")
            }
            return
        }
        guard let token, let oauth = clientID ?? clientSecret.map({ Value(value: "", source: $0.source) }) else {
            return
        }
        throw DatabricksError(.configuration,
            "more than one authorization method configured: a token (\(token.source)) and an OAuth client "
                + "(\(oauth.source))",
            remedy: "Remove one of them, or choose with DATABRICKS_AUTH_TYPE=pat or DATABRICKS_AUTH_TYPE=oauth-m2m "
                + "(auth_type in the profile).")
    }

    /// The credential, as ``Authentication``: the one `auth_type` picks, else the one configured.
    /// - Throws: when there is none, or an OAuth client lacks its id or secret; the error names where each
    ///   part was looked for.
    public func authentication(tokenVariable: String = "DATABRICKS_TOKEN") throws -> Authentication {
        let wantsOAuth = authType.map { $0.value == "oauth-m2m" } ?? (token == nil && (clientID != nil || clientSecret != nil))
        if wantsOAuth {
            guard let id = clientID, let secret = clientSecret else {
                let missing = clientID == nil ? "DATABRICKS_CLIENT_ID (client_id)" : "DATABRICKS_CLIENT_SECRET (client_secret)"
                throw DatabricksError(.configuration, "OAuth M2M needs a client id and a client secret; \(missing) is not set",
                    remedy: "Set both DATABRICKS_CLIENT_ID and DATABRICKS_CLIENT_SECRET, or client_id and client_secret "
                        + "in the profile.")
            }
            return .oauthM2M(clientID: id.value, clientSecret: secret.value)
        }
        if let token { return .personalAccessToken(token.value) }
        throw DatabricksError(.configuration, "no credential found",
            remedy: "Set \(tokenVariable) to a personal access token, DATABRICKS_CLIENT_ID and DATABRICKS_CLIENT_SECRET "
                + "for a service principal, or name a profile of ~/.databrickscfg with --profile "
                + "(or DATABRICKS_CONFIG_PROFILE).")
    }

    /// `path` with the home directory written `~`, for messages.
    static func shown(_ path: String, environment: [String: String]) -> String {
        let home = DatabricksConfigFile.home(environment)
        return path.hasPrefix(home + "/") ? "~" + path.dropFirst(home.count) : path
    }
}
