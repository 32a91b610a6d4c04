import CDFSyncClient
import Foundation

/// A named, saved way to reach one SQL warehouse. Holds no secret: only where the secret comes from.
public struct SavedConnection: Sendable, Equatable, Codable {
    /// How the connection authenticates.
    public enum AuthKind: String, Sendable, Codable, CaseIterable {
        /// A personal access token.
        case pat
        /// OAuth machine-to-machine: a service principal's client id and secret.
        case oauthM2M = "oauth-m2m"
    }

    /// Where the token (PAT) or client secret (OAuth M2M) comes from.
    public enum SecretSource: Sendable, Equatable, Codable, CustomStringConvertible {
        /// Read from this environment variable each time; only the name is stored.
        case environment(String)
        /// Stored encrypted (AES-256-GCM) in the connection store.
        case encrypted

        public var description: String {
            switch self {
            case .environment(let name): "env \(name)"
            case .encrypted: "stored (encrypted)"
            }
        }

        enum CodingKeys: String, CodingKey { case kind, variable }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            switch try c.decode(String.self, forKey: .kind) {
            case "env": self = .environment(try c.decode(String.self, forKey: .variable))
            case "encrypted": self = .encrypted
            case let other:
                throw DecodingError.dataCorruptedError(forKey: .kind, in: c, debugDescription: "unknown secret kind \(other)")
            }
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            switch self {
            case .environment(let v):
                try c.encode("env", forKey: .kind)
                try c.encode(v, forKey: .variable)
            case .encrypted:
                try c.encode("encrypted", forKey: .kind)
            }
        }
    }

    public var name: String
    /// Normalised workspace URL (`https://host[:port]`).
    public var host: String
    public var warehouseID: String
    public var catalog: String?
    public var schema: String?
    public var auth: AuthKind
    /// The service principal's client id (OAuth M2M only; not a secret).
    public var clientID: String?
    public var secret: SecretSource
    /// A PEM CA bundle to trust.
    public var caBundle: String?

    enum CodingKeys: String, CodingKey {
        case name, host, catalog, schema, auth, secret
        case warehouseID = "warehouse_id"
        case clientID = "client_id"
        case caBundle = "ca_bundle"
    }

    /// Creates and validates a connection.
    /// - Throws: `DatabricksError` `.configuration` for a bad name, host or warehouse id, or OAuth without a
    ///   client id.
    public init(
        name: String, host: String, warehouseID: String, catalog: String? = nil, schema: String? = nil,
        auth: AuthKind = .pat, clientID: String? = nil, secret: SecretSource, caBundle: String? = nil
    ) throws {
        try Self.validateName(name)
        // Reuse the client's checks of host and warehouse id.
        let probe = try ConnectionSettings(host: host, warehouseID: warehouseID,
            authentication: .personalAccessToken(Secret("")))
        if auth == .oauthM2M && (clientID ?? "").isEmpty {
            throw DatabricksError(.configuration, "OAuth M2M needs a client id",
                remedy: "Pass --client-id with the service principal's application id.")
        }
        if case .environment(let v) = secret, !Self.isValidVariableName(v) {
            throw DatabricksError(.configuration, "'\(v)' is not an environment variable name",
                remedy: "Pass the variable's name (letters, digits, _), not its value.")
        }
        self.name = name
        self.host = probe.baseURL
        self.warehouseID = warehouseID
        self.catalog = catalog
        self.schema = schema
        self.auth = auth
        self.clientID = auth == .oauthM2M ? clientID : nil
        self.secret = secret
        self.caBundle = caBundle
    }

    /// Names are 1–64 characters of letters, digits, `.`, `_` and `-`, starting with a letter or digit.
    public static func validateName(_ name: String) throws {
        let ok = !name.isEmpty && name.utf8.count <= 64 && name.utf8.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2E
                || b == 0x5F || b == 0x2D
        } && name.utf8.first.map { $0 != 0x2E && $0 != 0x2D && $0 != 0x5F } == true
        guard ok else {
            throw DatabricksError(.configuration, "'\(name)' is not a valid connection name",
                remedy: "Use 1–64 letters, digits, '.', '_' or '-', starting with a letter or digit.")
        }
    }

    static func isValidVariableName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 255 && name.utf8.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x5F
        } && !(name.utf8.first! >= 0x30 && name.utf8.first! <= 0x39)
    }

    /// The settings this connection resolves to, given its secret.
    public func settings(secret: Secret, transport: TransportOptions = TransportOptions()) throws -> ConnectionSettings {
        var transport = transport
        if transport.caBundlePath == nil { transport.caBundlePath = caBundle }
        let authentication: Authentication
        switch auth {
        case .pat: authentication = .personalAccessToken(secret)
        case .oauthM2M: authentication = .oauthM2M(clientID: clientID ?? "", clientSecret: secret)
        }
        return try ConnectionSettings(host: host, warehouseID: warehouseID, authentication: authentication,
            catalog: catalog, schema: schema, transport: transport)
    }
}
