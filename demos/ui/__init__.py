"""What every tab shares: widgets and error display, the Models tab, presenter mode, Spaces, the request gate."""
