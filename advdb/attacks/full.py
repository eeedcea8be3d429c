"""The three full attacks, as their authors defined them (IFGS, CW-L2, L-BFGS)."""
