namespace ModelSeal.Client;
