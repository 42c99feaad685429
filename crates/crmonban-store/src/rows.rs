//! Reading rows back into typed values, turning every bad value into [`StoreError::Corrupt`].

use std::fmt::Display;

use sqlx::sqlite::{Sqlite, SqliteRow};
use sqlx::{Decode, Row, Type, TypeInfo, ValueRef};

use crate::StoreError;

/// One row of `table`, identified by `key` in error messages.
pub(crate) struct RowReader<'r> {
    row: &'r SqliteRow,
    table: &'static str,
    key: String,
}

impl<'r> RowReader<'r> {
    /// A reader for a row whose key is the integer column `id`.
    pub(crate) fn by_id(row: &'r SqliteRow, table: &'static str) -> Result<Self, StoreError> {
        let mut reader = RowReader {
            row,
            table,
            key: "id ?".to_owned(),
        };
        let id: i64 = reader.get("id")?;
        reader.key = format!("id {id}");
        Ok(reader)
    }

    /// A reader for a row whose key is the text column `column`.
    pub(crate) fn by_text_key(
        row: &'r SqliteRow,
        table: &'static str,
        column: &'static str,
    ) -> Result<Self, StoreError> {
        let mut reader = RowReader {
            row,
            table,
            key: format!("{column} ?"),
        };
        let key: String = reader.get(column)?;
        reader.key = format!("{column} {key:?}");
        Ok(reader)
    }

    /// The value of `column` as `T`; a value of another type is corrupt.
    pub(crate) fn get<T>(&self, column: &'static str) -> Result<T, StoreError>
    where
        T: for<'a> Decode<'a, Sqlite> + Type<Sqlite>,
    {
        self.row.try_get(column).map_err(|error| {
            let value = match self.row.try_get_raw(column) {
                Ok(raw) if raw.is_null() => "NULL".to_owned(),
                Ok(raw) => format!("a value of type {}", raw.type_info().name()),
                Err(_) => "nothing (no such column)".to_owned(),
            };
            self.corrupt(column, value, error.to_string())
        })
    }

    /// The text of `column` parsed by `parse`; a parse failure is corrupt.
    pub(crate) fn parse<T, E: Display>(
        &self,
        column: &'static str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<T, StoreError> {
        let text: String = self.get(column)?;
        parse(&text).map_err(|error| self.corrupt(column, format!("{text:?}"), error.to_string()))
    }

    /// Like [`RowReader::parse`] for a nullable column.
    pub(crate) fn parse_opt<T, E: Display>(
        &self,
        column: &'static str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<Option<T>, StoreError> {
        let text: Option<String> = self.get(column)?;
        text.map(|text| {
            parse(&text)
                .map_err(|error| self.corrupt(column, format!("{text:?}"), error.to_string()))
        })
        .transpose()
    }

    /// A nullable integer column read into a narrower or unsigned type (`u32`, `u64`).
    pub(crate) fn convert_opt<T>(&self, column: &'static str) -> Result<Option<T>, StoreError>
    where
        T: TryFrom<i64>,
        T::Error: Display,
    {
        let n: Option<i64> = self.get(column)?;
        n.map(|n| {
            T::try_from(n).map_err(|error| self.corrupt(column, n.to_string(), error.to_string()))
        })
        .transpose()
    }

    fn corrupt(&self, column: &'static str, value: String, problem: String) -> StoreError {
        StoreError::Corrupt {
            table: self.table,
            key: self.key.clone(),
            column,
            value,
            problem,
        }
    }
}
