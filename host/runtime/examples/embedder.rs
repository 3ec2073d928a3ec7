//! An embedder's first page: load a provider component, give it a capability of
//! the embedder's own, and call it.
//!
//! The capability here is an inventory: the provider reports each id it stores or
//! deletes (never a value), and the embedder keeps the list. It is defined in the
//! embedder's own WIT package (`example:embedder/inventory@0.1.0`), not in
//! secret-broker's, and follows the shape of every capability crate:
//!
//! 1. `bindgen!` for the interface (the host trait and `add_to_linker`);
//! 2. a context (`InventoryCtx`), shared by every Wasm instance of one provider;
//! 3. a view (`InventoryView<'a>`): the context plus the call's [`HostCalls`],
//!    which charge guest data against the call's limits and hold its handles;
//! 4. the host trait implemented for the view;
//! 5. [`Grant`] for the context: its name, the import it satisfies, and how it is
//!    linked. `Granted::with` then grants it to one provider, and nothing else is
//!    linked: the same component without the grant fails to start, naming the
//!    import.
//!
//! Run it on the test guest (`tests/guests/inventory`), built by `cargo test`:
//!
//! ```text
//! cargo run -p secret-broker-runtime --example embedder -- PATH/TO/test_guest_inventory.wasm
//! ```

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use secret_broker_runtime::wasmtime::component::{HasData, Linker};
use secret_broker_runtime::{
    Grant, Granted, HostCalls, HostState, ProviderError, ProviderHost, PutOptions, Runtime,
    RuntimeOptions, SecretValue,
};

wasmtime::component::bindgen!({
    inline: "
        package example:embedder@0.1.0;

        interface inventory {
            /// Records that `id` saw `event` (put, delete); never a value.
            report: func(id: string, event: string);
        }

        world inventory-host {
            import inventory;
        }
    ",
    imports: { default: async | trappable },
});

use example::embedder::inventory::{Host, add_to_linker as link};

/// The inventory as granted to one provider: where its events go.
#[derive(Clone, Default)]
pub struct InventoryCtx {
    events: Arc<Mutex<Vec<(String, String)>>>,
}

impl InventoryCtx {
    /// The events recorded so far: `(id, event)`.
    pub fn events(&self) -> Vec<(String, String)> {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// What the inventory's host functions see.
pub struct InventoryView<'a> {
    ctx: Option<&'a InventoryCtx>,
    host: HostCalls<'a>,
}

struct InventoryData;

impl HasData for InventoryData {
    type Data<'a> = InventoryView<'a>;
}

impl Host for InventoryView<'_> {
    async fn report(&mut self, id: String, event: String) -> wasmtime::Result<()> {
        // Guest data counts against the call's limits like any capability's.
        self.host.charge(id.len() + event.len())?;
        if let Some(ctx) = self.ctx {
            ctx.events
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((id, event));
        }
        Ok(())
    }
}

impl Grant for InventoryCtx {
    fn name(&self) -> &str {
        "inventory"
    }

    fn import(&self) -> String {
        "example:embedder/inventory@0.1.0".into()
    }

    fn add_to_linker(&self, linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        link::<HostState, InventoryData>(linker, |state| {
            let (ctx, host) = Granted::view::<InventoryCtx>(state);
            InventoryView { ctx, host }
        })
    }
}

/// Runs the provider at `component` with the inventory granted: stores, reads
/// back and deletes one secret, and returns what the inventory recorded.
pub async fn run(component: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let runtime = Runtime::new(RuntimeOptions::default())?;
    let component = runtime.load_file(component)?;

    // Deny by default: without the grant, the provider does not start.
    match ProviderHost::new(&runtime, &component, Granted::new("ungranted")).await {
        Err(ProviderError::NotGranted { import, .. }) => {
            println!("without the grant: refused, it imports {import}");
        }
        Err(other) => return Err(other.into()),
        Ok(_) => anyhow::bail!("a provider started without the capability it imports"),
    }

    let inventory = InventoryCtx::default();
    let granted = Granted::new("example").with(inventory.clone());
    let provider = ProviderHost::new(&runtime, &component, granted).await?;

    let id = "/openmetadata/database/mysql_prod/password";
    let value = SecretValue::from_string("s3cr3t".into());
    let outcome = provider.put(id, &value, &PutOptions::default()).await?;
    let back = provider.get(id).await?;
    anyhow::ensure!(
        back.is_some_and(|v| v.ct_eq(&value)),
        "the value did not read back"
    );
    provider.delete(id).await?;
    println!("put {id}: {outcome:?}; read back; deleted");

    let events = inventory.events();
    for (id, event) in &events {
        println!("inventory: {event} {id}");
    }
    Ok(events)
}

#[allow(dead_code, reason = "the tests include this file and call `run` only")]
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Some(path) = std::env::args_os().nth(1) else {
        anyhow::bail!(
            "usage: embedder PATH/TO/PROVIDER.wasm (for example test_guest_inventory.wasm)"
        );
    };
    run(Path::new(&path)).await.map(drop)
}
