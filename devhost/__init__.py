"""Local dev host: runs the function app's HTTP, timer and Service Bus queue functions on one machine
the way the Azure Functions host does (`python -m devhost`). A convenience only: no business logic
lives here, and `func start` keeps working for those who have Core Tools."""
