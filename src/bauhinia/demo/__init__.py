"""Demo departments: the Housing Department's application site (a consumer of the data exchange) and the
Immigration, Inland Revenue and Transport Departments (its providers). They speak only HTTP to the
platform, through ``bauhinia.sdk``, as real departments would; no server code is imported here."""

from bauhinia.demo.departments import Departments, create_departments

__all__ = ["Departments", "create_departments"]
