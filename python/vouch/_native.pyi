"""The Rust half of the package (crates/vouch-py)."""

__all__ = [
    "HAS_LLM",
    "ZK_PRIVATE_SYSTEM",
    "ZK_SYSTEM",
    "check_private_opening",
    "key_address",
    "key_create",
    "model_id_of_file",
    "random_salt",
    "receipt_from_bytes",
    "receipt_id",
    "receipt_to_bytes",
    "sign_job",
    "sign_push",
    "sign_tx",
    "verify",
]

HAS_LLM: bool
ZK_SYSTEM: str
ZK_PRIVATE_SYSTEM: str

def verify(
    receipt: str,
    *,
    model: str | None = None,
    genesis: str | None = None,
    online: str | None = None,
    epochs_path: str | None = None,
    epochs_json: str | None = None,
    input_path: str | None = None,
    input_json: str | None = None,
    salt: str | None = None,
    response_path: str | None = None,
    response_json: str | None = None,
    tee_measurements: list[str] = ...,
    tee_policy: str | None = None,
    allow_simulated_tee: bool = False,
) -> tuple[bool, str, str]: ...
def receipt_to_bytes(json: str) -> bytes: ...
def receipt_from_bytes(data: bytes) -> str: ...
def receipt_id(json: str) -> str: ...
def model_id_of_file(path: str) -> str: ...
def key_create(path: str) -> str: ...
def key_address(path: str) -> str: ...
def sign_push(key: str, name: str, version: str | None, model_id: str) -> tuple[str, str]: ...
def sign_tx(key: str, chain: str, nonce: int, fee: int, kind: str) -> str: ...
def sign_job(key: str, tx: str, id: str, quorum: int, fee_per_executor: int, min_fee: int) -> str: ...
def random_salt() -> str: ...
def check_private_opening(receipt: str, input: str, salt: str) -> None: ...
