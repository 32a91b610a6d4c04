/// The JSON body of a non-2xx REST response.
///
/// Covers `{"error_code": "NOT_FOUND" | 403, "message": …, "details": [...]}` and the older
/// `{"error": "..."}`. Unknown fields are ignored.
public struct APIErrorBody: Codable, Sendable, Hashable {
    /// The code (string or number); absent in the older `{"error": …}` style.
    public var errorCode: ErrorCode?
    /// Human-readable text.
    public var message: String?
    /// Older-style error text.
    public var error: String?
    /// Structured details (`google.rpc.ErrorInfo`, `RequestInfo`, …).
    public var details: [ErrorDetail]?

    /// Creates an error body (for simulators and tests).
    public init(errorCode: ErrorCode? = nil, message: String? = nil, error: String? = nil,
                details: [ErrorDetail]? = nil) {
        self.errorCode = errorCode
        self.message = message
        self.error = error
        self.details = details
    }

    enum CodingKeys: String, CodingKey {
        case errorCode = "error_code"
        case message, error, details
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        errorCode = try c.decodeIfPresent(ErrorCode.self, forKey: .errorCode)
        message = try c.decodeIfPresent(String.self, forKey: .message)
        error = try c.decodeIfPresent(String.self, forKey: .error)
        details = try? c.decodeIfPresent([ErrorDetail].self, forKey: .details)
    }

    /// The best text to show: `message`, else `error`.
    public var text: String? { message ?? error }
}

/// One entry of `details` in an error body. Every field is optional; unknown ones are ignored.
public struct ErrorDetail: Codable, Sendable, Hashable {
    /// `@type`, e.g. `type.googleapis.com/google.rpc.ErrorInfo`.
    public var type: String?
    /// `ErrorInfo.reason`, e.g. `"INVALID_TOKEN"`.
    public var reason: String?
    /// `ErrorInfo.domain`.
    public var domain: String?
    /// String-valued metadata (non-string values are dropped).
    public var metadata: [String: String]?
    /// `RequestInfo.request_id`.
    public var requestID: String?

    /// Creates a detail entry.
    public init(type: String? = nil, reason: String? = nil, domain: String? = nil,
                metadata: [String: String]? = nil, requestID: String? = nil) {
        self.type = type
        self.reason = reason
        self.domain = domain
        self.metadata = metadata
        self.requestID = requestID
    }

    enum CodingKeys: String, CodingKey {
        case type = "@type"
        case reason, domain, metadata
        case requestID = "request_id"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        type = try? c.decodeIfPresent(String.self, forKey: .type)
        reason = try? c.decodeIfPresent(String.self, forKey: .reason)
        domain = try? c.decodeIfPresent(String.self, forKey: .domain)
        metadata = try? c.decodeIfPresent([String: String].self, forKey: .metadata)
        requestID = try? c.decodeIfPresent(String.self, forKey: .requestID)
    }
}

/// An OAuth token-endpoint error body: `{"error":"invalid_client","error_description":"…"}`.
public struct OAuthErrorBody: Codable, Sendable, Hashable {
    /// The RFC 6749 error code, e.g. `invalid_client`.
    public var error: String
    /// Human-readable text.
    public var errorDescription: String?

    /// Creates an OAuth error body.
    public init(error: String, errorDescription: String? = nil) {
        self.error = error
        self.errorDescription = errorDescription
    }

    enum CodingKeys: String, CodingKey {
        case error
        case errorDescription = "error_description"
    }
}

/// A successful OAuth token response: `{"access_token":…,"token_type":"Bearer","expires_in":3600,"scope":…}`.
public struct OAuthTokenResponse: Codable, Sendable, Hashable {
    /// The bearer token.
    public var accessToken: String
    /// Normally `Bearer`.
    public var tokenType: String?
    /// Lifetime in seconds (number or numeric string).
    public var expiresIn: Int64?
    /// Granted scopes, space-separated.
    public var scope: String?

    /// Creates a token response (for simulators and tests).
    public init(accessToken: String, tokenType: String? = "Bearer", expiresIn: Int64? = nil, scope: String? = nil) {
        self.accessToken = accessToken
        self.tokenType = tokenType
        self.expiresIn = expiresIn
        self.scope = scope
    }

    enum CodingKeys: String, CodingKey {
        case accessToken = "access_token"
        case tokenType = "token_type"
        case expiresIn = "expires_in"
        case scope
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        accessToken = try c.decode(String.self, forKey: .accessToken)
        tokenType = try c.decodeIfPresent(String.self, forKey: .tokenType)
        expiresIn = try c.flexibleInt64IfPresent(forKey: .expiresIn)
        scope = try c.decodeIfPresent(String.self, forKey: .scope)
    }
}
