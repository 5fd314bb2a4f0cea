//! Discovery: ServiceProviderConfig, ResourceTypes and Schemas (RFC 7643
//! §5–7), describing exactly the attributes this server stores.

use serde_json::{json, Value};

use crate::config::Config;
use crate::domain::{FieldType, Kind};

pub const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const TENURE: &str = "urn:ietf:params:scim:schemas:extension:tenure:2.0:User";
pub const LIST: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// Largest page a list returns (also advertised as filter.maxResults).
pub const MAX_RESULTS: usize = 1000;

#[derive(Clone, Copy)]
struct A {
    multi: bool,
    required: bool,
    mutability: &'static str,
    uniqueness: &'static str,
    case_exact: bool,
    returned: &'static str,
}

const RW: A = A {
    multi: false,
    required: false,
    mutability: "readWrite",
    uniqueness: "none",
    case_exact: false,
    returned: "default",
};

fn attr(name: &str, kind: &str, a: A, description: &str) -> Value {
    json!({
        "name": name,
        "type": kind,
        "multiValued": a.multi,
        "description": description,
        "required": a.required,
        "caseExact": a.case_exact,
        "mutability": a.mutability,
        "returned": a.returned,
        "uniqueness": a.uniqueness,
    })
}

fn complex(name: &str, a: A, description: &str, subs: Vec<Value>) -> Value {
    let mut v = attr(name, "complex", a, description);
    v["subAttributes"] = Value::Array(subs);
    v
}

fn canonical(mut v: Value, values: &[&str]) -> Value {
    v["canonicalValues"] = json!(values);
    v
}

fn reference(name: &str, a: A, types: &[&str], description: &str) -> Value {
    let mut v = attr(name, "reference", a, description);
    v["referenceTypes"] = json!(types);
    v
}

fn multi_typed(name: &str, description: &str, types: &[&str], value_kind: &str) -> Value {
    complex(
        name,
        A { multi: true, ..RW },
        description,
        vec![
            attr("value", value_kind, RW, "The value"),
            canonical(attr("type", "string", RW, "A label"), types),
            attr("primary", "boolean", RW, "The primary value (at most one)"),
        ],
    )
}

fn user_attributes() -> Vec<Value> {
    let s = |n: &str, d: &str| attr(n, "string", RW, d);
    vec![
        attr(
            "userName",
            "string",
            A {
                required: true,
                uniqueness: "server",
                ..RW
            },
            "The identity provider's unique name; tenure derives its username (the id) from it once",
        ),
        complex(
            "name",
            RW,
            "The person's name",
            vec![
                s("formatted", "The full name"),
                s("familyName", "Family name"),
                s("givenName", "Given name"),
                s("middleName", "Middle name"),
                s("honorificPrefix", "Honorific prefix"),
                s("honorificSuffix", "Honorific suffix"),
            ],
        ),
        s("displayName", "The display name (tenure's display name)"),
        s("nickName", "A casual name"),
        s("title", "Job title"),
        s("userType", "The relationship to the organisation"),
        s("preferredLanguage", "Preferred language (tenure's language)"),
        s("locale", "Locale"),
        s("timezone", "Time zone"),
        reference("profileUrl", RW, &["external"], "A profile page"),
        attr("active", "boolean", RW, "false disables the account (reason source_removed), true enables it"),
        complex(
            "emails",
            A {
                multi: true,
                required: true,
                ..RW
            },
            "Email addresses; the primary one is tenure's email (required, unique)",
            vec![
                attr("value", "string", A { required: true, ..RW }, "The address"),
                canonical(attr("type", "string", RW, "A label"), &["work", "home", "other"]),
                attr("primary", "boolean", RW, "The primary address (at most one)"),
            ],
        ),
        multi_typed("phoneNumbers", "Phone numbers", &["work", "home", "mobile", "fax", "pager", "other"], "string"),
        complex(
            "addresses",
            A { multi: true, ..RW },
            "Postal addresses",
            vec![
                s("formatted", "The full address"),
                s("streetAddress", "Street"),
                s("locality", "City"),
                s("region", "Region"),
                s("postalCode", "Postal code"),
                s("country", "Country"),
                canonical(attr("type", "string", RW, "A label"), &["work", "home", "other"]),
                attr("primary", "boolean", RW, "The primary address"),
            ],
        ),
        complex(
            "groups",
            A {
                multi: true,
                mutability: "readOnly",
                ..RW
            },
            "The groups of the account (change them through /Groups)",
            vec![
                attr("value", "string", A { mutability: "readOnly", ..RW }, "The group's id"),
                reference("$ref", A { mutability: "readOnly", ..RW }, &["Group"], "The group's URI"),
                attr("display", "string", A { mutability: "readOnly", ..RW }, "The group's displayName"),
            ],
        ),
    ]
}

fn enterprise_attributes() -> Vec<Value> {
    let s = |n: &str, d: &str| attr(n, "string", RW, d);
    vec![
        s("employeeNumber", "Employee number"),
        s("costCenter", "Cost center"),
        s("organization", "Organisation (tenure's company)"),
        s("division", "Division"),
        s("department", "Department"),
        complex(
            "manager",
            RW,
            "The manager: tenure's sponsor (an active account)",
            vec![
                attr("value", "string", RW, "The manager's id"),
                reference("$ref", RW, &["User"], "The manager's URI"),
                attr(
                    "displayName",
                    "string",
                    A {
                        mutability: "readOnly",
                        ..RW
                    },
                    "The manager's display name",
                ),
            ],
        ),
    ]
}

fn tenure_attributes(config: &Config) -> Vec<Value> {
    let kinds: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
    let mut out = vec![
        canonical(
            attr("kind", "string", RW, "The kind of account (default: the configured SCIM kind or template); removing it keeps the kind"),
            &kinds,
        ),
        attr("project", "string", RW, "Project"),
        // Published read-only: identity providers send no dates (tenure sets
        // them from the template); a client mapping them may still send
        // YYYY-MM-DD or RFC 3339 values, checked against the policy.
        attr("startDate", "dateTime", A { mutability: "readOnly", returned: "request", ..RW }, "First day of access (the date part counts)"),
        attr("endDate", "dateTime", A { mutability: "readOnly", returned: "request", ..RW }, "Last day of access (the template's duration from the start; the kind's maximum caps it)"),
        attr(
            "status",
            "string",
            A {
                mutability: "readOnly",
                returned: "request",
                ..RW
            },
            "tenure's lifecycle status",
        ),
    ];
    for field in &config.custom_fields {
        let mut v = attr(
            &field.name,
            "string",
            RW,
            field.label.as_deref().unwrap_or(&field.name),
        );
        if field.field_type == FieldType::Choice {
            let choices: Vec<&str> = field.choices.iter().map(String::as_str).collect();
            v = canonical(v, &choices);
        }
        if field.required {
            v["required"] = json!(true);
        }
        out.push(v);
    }
    out
}

fn group_attributes() -> Vec<Value> {
    vec![
        attr(
            "displayName",
            "string",
            A {
                required: true,
                uniqueness: "server",
                ..RW
            },
            "The group's name; tenure derives its group name (the id) from it once",
        ),
        complex(
            "members",
            A { multi: true, ..RW },
            "Members (users)",
            vec![
                attr(
                    "value",
                    "string",
                    A {
                        mutability: "immutable",
                        ..RW
                    },
                    "The member's id",
                ),
                reference(
                    "$ref",
                    A {
                        mutability: "immutable",
                        ..RW
                    },
                    &["User"],
                    "The member's URI",
                ),
                canonical(
                    attr(
                        "type",
                        "string",
                        A {
                            mutability: "immutable",
                            ..RW
                        },
                        "User",
                    ),
                    &["User"],
                ),
                attr(
                    "display",
                    "string",
                    A {
                        mutability: "readOnly",
                        ..RW
                    },
                    "The member's display name",
                ),
            ],
        ),
    ]
}

fn schema(id: &str, name: &str, description: &str, attributes: Vec<Value>, base: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": id,
        "name": name,
        "description": description,
        "attributes": attributes,
        "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{id}")},
    })
}

pub fn schemas(config: &Config, base: &str) -> Vec<Value> {
    vec![
        schema(USER, "User", "User Account", user_attributes(), base),
        schema(GROUP, "Group", "Group", group_attributes(), base),
        schema(
            ENTERPRISE,
            "EnterpriseUser",
            "Enterprise User",
            enterprise_attributes(),
            base,
        ),
        schema(
            TENURE,
            "TenureUser",
            "tenure's account lifecycle",
            tenure_attributes(config),
            base,
        ),
    ]
}

pub fn resource_types(base: &str) -> Vec<Value> {
    vec![
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": "User",
            "name": "User",
            "endpoint": "/Users",
            "description": "User Account",
            "schema": USER,
            "schemaExtensions": [
                {"schema": ENTERPRISE, "required": false},
                {"schema": TENURE, "required": false}
            ],
            "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/User")},
        }),
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": "Group",
            "name": "Group",
            "endpoint": "/Groups",
            "description": "Group",
            "schema": GROUP,
            "schemaExtensions": [],
            "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/Group")},
        }),
    ]
}

pub fn service_provider_config(base: &str, max_body: usize) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "documentationUri": "https://github.com/tenure/tenure#http-api-and-scim",
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": max_body},
        "filter": {"supported": true, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": false},
        "sort": {"supported": true},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "API token",
            "description": "Authorization: Bearer TOKEN, a token made with `token create NAME --scope scim`",
            "primary": true,
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{base}/ServiceProviderConfig"),
        },
    })
}
