//! Resource ownership.

use serde_json::Value;

use super::*;
use crate::error::OpError;
use crate::json::obj;

impl Identity {
    pub(super) fn is_owner(&self, user: &str, rtype: &str, name: &str) -> bool {
        self.owners
            .get(&(rtype.to_string(), name.to_string()))
            .is_some_and(|o| o == user)
    }

    pub(crate) fn set_owner(&mut self, user: &str, rt: &str, rn: &str) {
        self.owners
            .insert((rt.to_string(), rn.to_string()), user.to_string());
    }

    pub(crate) fn remove_ownership(&mut self, rt: &str, rn: &str) {
        self.owners.shift_remove(&(rt.to_string(), rn.to_string()));
        self.acl
            .retain(|a| !(a.resource_type == rt && a.resource_name == rn));
    }

    pub(crate) fn get_owner(&self, rt: &str, rn: &str) -> Value {
        match self.owners.get(&(rt.to_string(), rn.to_string())) {
            None => obj([("owner", Value::Null)]),
            Some(o) => obj([(
                "owner",
                obj([
                    ("userId", o.clone().into()),
                    ("username", self.subject_name("user", o).into()),
                    ("resourceType", rt.into()),
                    ("resourceName", rn.into()),
                ]),
            )]),
        }
    }

    pub(crate) fn transfer_owner(
        &mut self,
        caller: &str,
        rt: &str,
        rn: &str,
        new_owner: &str,
    ) -> Result<(), OpError> {
        let key = (rt.to_string(), rn.to_string());
        let Some(current) = self.owners.get(&key).cloned() else {
            return Err(OpError::not_found("Resource has no owner"));
        };
        let superadmin = self.role_names(caller).iter().any(|r| r == "superadmin");
        if !superadmin && current != caller {
            return Err(OpError::forbidden(
                "Only the owner or superadmin can transfer ownership",
            ));
        }
        if new_owner != SUPERADMIN && !self.users.contains_key(new_owner) {
            return Err(OpError::not_found("New owner not found"));
        }
        self.owners.insert(key, new_owner.to_string());
        Ok(())
    }
}
